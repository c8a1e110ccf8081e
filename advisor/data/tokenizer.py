"""The model's own token counter, read from its tokenizer.json without transformers.

`advisor plan --data` (and the wizard's plan) and `advisor validate --tokenizer`
count tokens with `model_token_counter`. A bytes/4 estimate misses badly on
digits, code, non-English text and small vocabularies, and a plan whose seq_len
comes from it can cut every response away. The `tokenizers` library loads a
tokenizer.json in milliseconds and needs neither torch nor transformers, so the
plan commands stay light.

The file is looked up where the model's weights would be read from, never
downloaded: a local model directory (a path, the catalog's path or embedded
model) or, for a hub id, the local Hugging Face cache. Counts are of the text
alone, with the special tokens the tokenizer's post-processor adds (BOS); the
prompt and chat templates the run wraps a record in are not rendered here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..hub import download_model_file, hub_reachable, offline_requested
from ..knowledge_base import cached_hub_snapshot, resolve_model
from .stats import TokenCounter

TOKENIZER_FILE = "tokenizer.json"


def tokenizer_file(model: str) -> Optional[Path]:
    """The tokenizer.json of `model` on this machine (its directory, or the hub cache of its hub id), if any."""
    source = resolve_model(model).source
    local = Path(source) / TOKENIZER_FILE
    if local.is_file():
        return local
    snapshot = cached_hub_snapshot(source, TOKENIZER_FILE)
    if snapshot is not None:
        return snapshot / TOKENIZER_FILE
    if Path(source).exists() or offline_requested() or not hub_reachable():
        return None
    try:  # a hub id, and the Hub answers: the tokenizer alone (a few MB), as its config.json was fetched
        return download_model_file(source, TOKENIZER_FILE)
    except UserError:
        return None


def model_token_counter(model: str) -> Optional[TokenCounter]:
    """text -> tokens with `model`'s own tokenizer, or None when no readable tokenizer.json is at hand."""
    path = tokenizer_file(model)
    if path is None:
        return None
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception:  # a file this tokenizers version cannot read: the caller falls back (and says so)
        return None
    # A saved tokenizer.json can pad or truncate every encoding (MiniLM's pads to 128): count the text itself.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text).ids)
