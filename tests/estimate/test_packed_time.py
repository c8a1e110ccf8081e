"""Packing in the time model: a packed step counts real tokens; the memory peak stays the worst case."""

from advisor.estimate import EstimateRequest, estimate
from advisor.knowledge_base import resolve_gpu, resolve_model
from advisor.manager import get_method


def _request(**fields) -> EstimateRequest:
    plugin = get_method("lora")
    arch = resolve_model("llama-3.2-1b").architecture
    values = {"gpu": resolve_gpu("h100"), "batch_size": 8, "seq_len": 2048, "train_tokens": 10_000_000, **fields}
    return EstimateRequest(architecture=arch, footprint=plugin.footprint(arch, plugin.hyperparameters({})), **values)


def test_packed_rows_are_timed_at_the_datas_mean_length_and_the_peak_stays_at_seq_len():
    padded, packed = estimate(_request()), estimate(_request(packed_mean_tokens=300.0))
    assert packed.memory == padded.memory and packed.fits == padded.fits  # the worst case: the longest micro-batch
    # A packed step holds 8 examples of 300 real tokens: it is timed as such, and tokens/s counts those tokens.
    assert packed.time == estimate(_request(seq_len=300)).time
    assert packed.time.tokens_per_s != padded.time.tokens_per_s
    assert estimate(_request(packed_mean_tokens=300.0)).time == estimate(_request(packed_mean_tokens=300.4)).time


def test_a_mean_longer_than_seq_len_counts_seq_len():
    assert estimate(_request(packed_mean_tokens=5000.0)).time == estimate(_request()).time


def test_the_planner_packs_causal_lm_sft_but_not_classification():
    from types import SimpleNamespace

    from advisor.candidates import configure
    from advisor.facts import derive_facts
    from advisor.knowledge_base import resolve_model as model_entry
    from advisor.models import Profile

    report = SimpleNamespace(stats=SimpleNamespace(token_lengths=SimpleNamespace(mean=120.0, p95=400), labels=None))
    for task, packed in (("instruction", 120.0), ("classification", None)):
        profile = Profile(task=task, examples=3000, model="llama-3.2-1b", gpu="h100")
        model = model_entry("llama-3.2-1b")
        candidate = configure(get_method("lora"), profile, model, derive_facts(profile, model), report, None)
        assert candidate.request.packed_mean_tokens == packed
