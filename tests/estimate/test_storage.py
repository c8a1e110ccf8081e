"""Storage: the adapter size equals what peft's save_pretrained writes; totals follow tasks and merging."""

import pytest

from advisor.estimate import storage
from advisor.knowledge_base import resolve_model
from advisor.manager import get_method

from . import tiny_models as tm

#: The estimate approximates the safetensors header and adapter_config.json.
SLACK_BYTES = 4_000


@pytest.mark.parametrize(
    "family, method, hp",
    [("llama", "lora", {"r": 8}), ("gpt2", "lora", {"r": 4, "target_modules": ["c_attn"]}),
     ("llama", "prompt_tuning", {"num_virtual_tokens": 8}), ("qwen2", "prefix", {"num_virtual_tokens": 8})],
)
def test_adapter_size_is_what_peft_saves(tmp_path, family, method, hp):
    model = tm.build(family, "float32", method, **hp)
    model.save_pretrained(tmp_path)
    saved = sum((tmp_path / name).stat().st_size for name in ("adapter_model.safetensors", "adapter_config.json"))
    predicted = storage.adapter_bytes(tm.architecture(family), tm.footprint(family, method, **hp))
    assert abs(predicted - saved) <= SLACK_BYTES


def test_full_checkpoint_is_every_parameter_in_the_training_dtype(tmp_path):
    model = tm.build("llama", "bfloat16", "full")
    model.save_pretrained(tmp_path)
    saved = (tmp_path / "model.safetensors").stat().st_size
    assert abs(storage.full_checkpoint_bytes(tm.architecture("llama"), "bf16") - saved) <= SLACK_BYTES


def footprint(model_id: str, method: str, **hp):
    plugin = get_method(method)
    arch = resolve_model(model_id).architecture
    return arch, plugin.footprint(arch, plugin.hyperparameters(hp))


def test_adapters_share_one_base_and_merging_costs_a_model_per_task():
    arch, fp = footprint("llama-3.1-8b", "lora")
    unmerged = storage.storage_estimate(arch, fp, "bf16", tasks=20)
    merged = storage.storage_estimate(arch, fp, "bf16", tasks=20, merged=True)
    assert unmerged.total_mb == pytest.approx(unmerged.base_mb + 20 * unmerged.per_task_mb)
    assert unmerged.per_task_mb == pytest.approx(fp.trainable_params * 4 / 1e6, rel=0.01)  # fp32 adapters
    assert merged.total_mb == pytest.approx(20 * unmerged.base_mb)
    assert merged.total_mb > 10 * unmerged.total_mb


def test_full_and_freeze_store_a_checkpoint_per_task():
    for method, hp in (("full", {}), ("freeze", {"trainable_layers": 2})):
        arch, fp = footprint("qwen2.5-0.5b", method, **hp)
        estimate = storage.storage_estimate(arch, fp, "bf16", tasks=3)
        assert estimate.per_task_mb == pytest.approx(arch.total_params() * 2 / 1e6, rel=1e-6)
        assert estimate.total_mb == pytest.approx(3 * estimate.per_task_mb)
