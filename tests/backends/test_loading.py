"""loading.py: the Hub decided reachable or not at once (unreachable = offline mode, one line); a quiet run."""

import time

import pytest

from advisor import hub
from advisor.backends import loading
from advisor.errors import UserError


@pytest.fixture
def online_requested(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE unset (the conftest still refuses internet sockets), an empty cache, a fresh probe."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "0")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    forget = loading.hub_reachable.cache_clear
    forget()
    yield
    forget()


def test_an_unreachable_hub_is_decided_in_well_under_a_second_and_goes_offline(online_requested, capsys):
    started = time.monotonic()
    with pytest.raises(UserError, match="the Hub is offline .* not in the local cache"):
        loading.check_reachable("someone/not-cached")
    assert time.monotonic() - started < 1.0
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["advisor: the Hugging Face Hub (huggingface.co) is not reachable; working offline (HF_HUB_OFFLINE=1)"]
    assert loading.offline_requested()


def test_the_probe_runs_once_per_process(online_requested, monkeypatch):
    calls = []
    monkeypatch.setattr(hub.socket, "create_connection", lambda *args, **kwargs: calls.append(args) or _Open())
    assert loading.hub_reachable() and loading.hub_reachable()
    assert len(calls) == 1


def test_a_reachable_hub_stays_online(online_requested, monkeypatch):
    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    loading.check_reachable("someone/not-cached")
    assert not loading.offline_requested()


def test_the_probe_asks_the_endpoint_huggingface_hub_will_use(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.internal:8080")
    assert loading.hub_address() == ("mirror.internal", 8080)
    monkeypatch.delenv("HF_ENDPOINT")
    assert loading.hub_address() == ("huggingface.co", 443)


class _Open:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_library_deprecations_are_quiet_and_user_warnings_stay():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loading.quiet_libraries()
        warnings.warn_explicit("`is_gradient_checkpointing` is deprecated", FutureWarning, "modeling_utils.py", 1,
                               module="transformers.modeling_utils")
        warnings.warn_explicit("banner", UserWarning, "dist.py", 1, module="setuptools.dist")
        warnings.warn_explicit("your labels are imbalanced", UserWarning, "x.py", 1, module="transformers.trainer")
    assert [str(w.message) for w in caught] == ["your labels are imbalanced"]


@pytest.mark.parametrize("model, model_type", [("gemma-3-1b", "gemma3_text"), ("gemma-3-4b", "gemma3"),
                                               ("qwen3-30b-a3b", "qwen3_moe"), ("phi-4", "phi3")])
def test_a_catalog_model_type_is_its_published_configs(model, model_type, tmp_path):
    """Without a local config.json the catalog's recorded model_type is used, not the estimator's family name."""
    assert loading.model_type_of(str(tmp_path / "not-downloaded"), model) == model_type


def test_a_local_config_json_decides_the_model_type(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gemma3_text"}')
    assert loading.model_type_of(str(tmp_path), "gemma-3-4b") == "gemma3_text"
