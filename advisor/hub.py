"""The Hugging Face Hub as the planner and the backends see it: reachable or not, decided at once.

The Hub is probed once per process with a short connection attempt; an
unreachable Hub (or HF_HUB_OFFLINE) is answered at once instead of letting
huggingface_hub retry for over a minute. A hub model that is neither in the
catalog nor in the local cache is priced from its config.json alone,
downloaded with huggingface_hub, which is imported only on that path (a
catalog plan stays free of it).
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UserError

HUB_PROBE_SECONDS = 3.0

#: What --model accepts, for the one line that refuses a hub id.
ACCEPTED_MODELS = ("a catalog id (`advisor models`), a local model directory with a config.json, "
                   "or a hub id whose config.json is in the local cache")


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def hub_address() -> tuple[str, int]:
    """Host and port of the Hub endpoint huggingface_hub will use (HF_ENDPOINT, else huggingface.co)."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@functools.cache
def hub_reachable() -> bool:
    """One TCP connection to the Hub endpoint, decided within HUB_PROBE_SECONDS, once per process.

    The attempt runs in a daemon thread because a name lookup on a machine without DNS is not bound by
    the socket timeout; a probe still pending after the deadline counts as unreachable.
    """
    answer: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection(hub_address(), timeout=HUB_PROBE_SECONDS):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=probe, name="hub-probe", daemon=True)
    worker.start()
    worker.join(HUB_PROBE_SECONDS)
    return bool(answer and answer[0])


def download_model_file(repo_id: str, filename: str) -> Path:
    """`filename` (config.json, tokenizer.json) of hub model `repo_id`, downloaded alone into the HF cache.

    One line (UserError, exit 2) when the Hub is off or unreachable, the repository is gated, unknown
    or private, or it has no such file; never a retry loop.
    """
    if offline_requested():
        raise UserError(f"model '{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                        f"accepted: {ACCEPTED_MODELS}")
    if not hub_reachable():
        host, _ = hub_address()
        raise UserError(f"model '{repo_id}' is not in the local Hugging Face cache and the Hub ({host}) is not "
                        f"reachable; accepted: {ACCEPTED_MODELS} (HF_HUB_OFFLINE=1 skips the check)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError, HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError,
    )

    try:
        return Path(hf_hub_download(repo_id, filename, etag_timeout=HUB_PROBE_SECONDS))
    except GatedRepoError:
        raise UserError(f"model '{repo_id}' is gated on the Hugging Face Hub: accept its terms on the model page "
                        "and log in (`hf auth login`), or pass a local model directory") from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise UserError(f"no model '{repo_id}' on the Hugging Face Hub (or it is private: log in with "
                        f"`hf auth login`); accepted: {ACCEPTED_MODELS}") from None
    except RemoteEntryNotFoundError:
        raise UserError(f"hub repository '{repo_id}' has no {filename}: it is not a transformers model") from None
    except (HfHubHTTPError, OSError) as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise UserError(f"cannot download {filename} of '{repo_id}' from the Hugging Face Hub: {first_line}") from None
