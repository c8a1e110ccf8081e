"""A hub id neither in the catalog nor in the cache: priced from its config.json when the Hub answers,
one line (exit 2) without a download attempt when it does not, one line for an unknown or gated repository.

huggingface_hub's download function is replaced here: nothing reaches the network.
"""

import json

import httpx2
import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from advisor import hub
from advisor.cli.main import main

TINY_LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100}


class FakeHub:
    """A stand-in for hf_hub_download: records each call and answers with a config (or raises `answer`)."""

    def __init__(self, folder):
        self.folder, self.calls, self.answer = folder, [], TINY_LLAMA

    def download(self, repo_id, filename, **options):
        self.calls.append((repo_id, filename))
        if isinstance(self.answer, Exception):
            raise self.answer
        snapshot = self.folder / repo_id.replace("/", "--")
        snapshot.mkdir(parents=True, exist_ok=True)
        (snapshot / filename).write_text(json.dumps(self.answer))
        return str(snapshot / filename)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """An empty cache, HF_HUB_OFFLINE unset, a reachable Hub, and the stand-in download."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    fake = FakeHub(tmp_path / "downloaded")
    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake.download)
    return fake


def plan(capsys, *argv):
    code = main(["plan", "--gpu", "a10g", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def http_error(kind, status):
    response = httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/someone/x"))
    return kind(f"{status} Client Error", response=response)


def test_a_reachable_hub_prices_the_model_from_its_config_alone(fake_hub, capsys):
    code, out, err = plan(capsys, "--model", "someone/tiny-llama", "--json")
    assert code == 0, err
    estimate = json.loads(out)["estimate"]
    assert estimate["total_params"] > 0 and estimate["fits"] is True
    assert fake_hub.calls == [("someone/tiny-llama", "config.json")]


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "unreachable"])
def test_no_hub_is_one_line_and_exit_2_without_a_download(fake_hub, monkeypatch, capsys, offline):
    if offline == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    code, out, err = plan(capsys, "--model", "someone/tiny-llama")
    assert code == 2 and out == "" and fake_hub.calls == []
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: model 'someone/tiny-llama' is not in the local Hugging Face cache")
    assert "accepted: a catalog id" in err and "local model directory" in err


@pytest.mark.parametrize("answer, expected", [
    (http_error(RepositoryNotFoundError, 404), "error: no model 'someone/tiny-llama' on the Hugging Face Hub"),
    (http_error(GatedRepoError, 403), "error: model 'someone/tiny-llama' is gated on the Hugging Face Hub"),
])
def test_an_unknown_or_gated_repository_is_one_line(fake_hub, capsys, answer, expected):
    fake_hub.answer = answer
    code, out, err = plan(capsys, "--model", "someone/tiny-llama")
    assert code == 2 and out == "" and fake_hub.calls == [("someone/tiny-llama", "config.json")]
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1


def test_a_name_that_is_no_hub_id_is_not_looked_up(fake_hub, capsys):
    code, _, err = plan(capsys, "--model", "llama-9b")
    assert code == 2 and fake_hub.calls == [] and "unknown model 'llama-9b'" in err


def test_plan_data_counts_with_the_tokenizer_of_a_hub_id_fetched_alone(tmp_path, monkeypatch):
    """A hub id outside the cache, the Hub answering: its tokenizer.json is fetched like its config.json."""
    from advisor.data import tokenizer

    fetched = tmp_path / "tokenizer.json"
    fetched.write_text("{}")
    asked = []
    monkeypatch.setattr(tokenizer, "resolve_model", lambda model: type("Entry", (), {"source": model})())
    monkeypatch.setattr(tokenizer, "cached_hub_snapshot", lambda source, filename: None)
    monkeypatch.setattr(tokenizer, "offline_requested", lambda: False)
    monkeypatch.setattr(tokenizer, "hub_reachable", lambda: True)
    monkeypatch.setattr(tokenizer, "download_model_file", lambda repo, name: asked.append((repo, name)) or fetched)
    assert tokenizer.tokenizer_file("someorg/new-model") == fetched
    assert asked == [("someorg/new-model", "tokenizer.json")]
    monkeypatch.setattr(tokenizer, "hub_reachable", lambda: False)
    assert tokenizer.tokenizer_file("someorg/new-model") is None
