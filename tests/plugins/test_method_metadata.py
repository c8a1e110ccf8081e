"""The built-in methods as data: metadata the rules read, hyperparameter models, exact footprints.

No torch here: footprints are checked against the `trainable` column of the
H100 calibration measurements (../shared/calibration/measured-memory.jsonl,
figures copied below) and against each other.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from advisor import manager
from advisor.errors import UserError
from advisor.knowledge_base import resolve_model

#: name -> (family, mergeable, requires_cuda, quantized, capacity, learning-rate range)
EXPECTED_METADATA = {
    "full": ("full", True, False, False, 4, (1e-5, 5e-5)),
    "freeze": ("partial", True, False, False, 2, (1e-5, 1e-4)),
    "lora": ("reparameterisation", True, False, False, 3, (1e-4, 3e-4)),
    "qlora": ("reparameterisation", True, True, True, 3, (1e-4, 3e-4)),
    "dora": ("reparameterisation", True, False, False, 3, (1e-4, 3e-4)),
    "ia3": ("additive", True, False, False, 1, (3e-3, 1e-2)),
    "prefix": ("soft-prompt", False, False, False, 2, (3e-3, 3e-2)),
    "prompt_tuning": ("soft-prompt", False, False, False, 1, (3e-3, 3e-2)),
    "adapter": ("additive", False, False, False, 3, (1e-4, 1e-3)),
    "dpo": ("reparameterisation", True, False, False, 3, (5e-6, 5e-5)),
}

#: (model, calibration method) -> measured trainable parameters, with the method and settings it used.
CALIBRATION = {
    ("gpt2", "lora"): 2_359_296, ("gpt2", "qlora"): 2_359_296, ("gpt2", "full"): 125_226_240,
    ("gpt2", "prompt_tuning"): 15_360, ("gpt2", "prefix"): 368_640, ("gpt2", "freeze"): 14_175_744,
    ("qwen2.5-0.5b", "lora"): 8_798_208, ("qwen2.5-0.5b", "qlora"): 8_798_208,
    ("qwen2.5-0.5b", "full"): 494_032_768, ("qwen2.5-0.5b", "prompt_tuning"): 17_920,
    ("qwen2.5-0.5b", "prefix"): 122_880, ("qwen2.5-0.5b", "freeze"): 29_824_768,
    ("llama-3.2-3b", "lora"): 24_313_856, ("llama-3.2-3b", "qlora"): 24_313_856,
    ("llama-3.2-3b", "full"): 3_212_749_824, ("llama-3.2-3b", "prompt_tuning"): 61_440,
    ("llama-3.2-3b", "prefix"): 1_146_880, ("llama-3.2-3b", "freeze"): 201_338_880,
}


def _footprint(method_name: str, model_id: str, **values):
    method = manager.get_method(method_name)
    return method.footprint(resolve_model(model_id).architecture, method.hyperparameters(values))


@pytest.mark.parametrize("name", list(EXPECTED_METADATA))
def test_builtin_metadata(name):
    method = manager.get_method(name)
    family, mergeable, requires_cuda, quantized, capacity, learning_rate = EXPECTED_METADATA[name]
    assert (method.family, method.mergeable, method.requires_cuda, method.quantized, method.capacity) == (
        family, mergeable, requires_cuda, quantized, capacity)
    assert method.learning_rate == pytest.approx(learning_rate)
    assert method.source and method.description


def test_builtins_come_first_and_are_all_there():
    names = list(manager.all_methods())
    assert set(EXPECTED_METADATA) <= set(names)
    assert set(names[: len(EXPECTED_METADATA)]) == set(EXPECTED_METADATA)


@pytest.mark.parametrize("model_id, method_name", list(CALIBRATION))
def test_footprint_matches_calibration(model_id, method_name):
    arch = resolve_model(model_id).architecture
    if method_name == "full":  # the calibration ran GPT-2 with 2048 learned positions (seq 2048)
        arch = arch.model_copy(update={"max_position_embeddings": 2048})
    method = manager.get_method(method_name)
    assert method.footprint(arch, method.hyperparameters({})).trainable_params == CALIBRATION[model_id, method_name]


@pytest.mark.parametrize("name", list(EXPECTED_METADATA))
def test_unknown_hyperparameter_is_refused(name):
    with pytest.raises(ValidationError, match="extra"):
        manager.get_method(name).hyperparameters({"no_such_setting": 1})


@pytest.mark.parametrize(
    "name, values",
    [("lora", {"r": 0}), ("lora", {"dropout": 1.0}), ("lora", {"target_modules": []}),
     ("dora", {"target_modules": ["q_proj", "q_proj"]}), ("qlora", {"compute_dtype": "int8"}),
     ("freeze", {"trainable_layers": 0}), ("freeze", {"trainable_layers": 1, "gradual_unfreezing": True}),
     ("prefix", {"num_virtual_tokens": 0}), ("prompt_tuning", {"num_virtual_tokens": 5000}),
     ("ia3", {"target_modules": "all-linear"}), ("adapter", {"bottleneck": 0})],
)
def test_out_of_range_hyperparameters_are_refused(name, values):
    with pytest.raises(ValidationError):
        manager.get_method(name).hyperparameters(values)


def test_hyperparameter_defaults_the_planner_relies_on():
    lora = manager.get_method("lora").hyperparameters({})
    assert (lora.r, lora.alpha, lora.dropout, lora.target_modules) == (16, 32, 0.05, "all-linear")
    qlora = manager.get_method("qlora").hyperparameters({})
    # compute_dtype None: the run's own compute dtype (advisor.precision), bf16 only where the GPU has it
    assert (qlora.double_quant, qlora.compute_dtype) == (True, None)
    freeze = manager.get_method("freeze").hyperparameters({})
    assert (freeze.trainable_layers, freeze.gradual_unfreezing) == (2, False)
    assert manager.get_method("prefix").hyperparameters({}).num_virtual_tokens == 20
    assert manager.get_method("ia3").hyperparameters({}).target_modules == "default"
    assert manager.get_method("adapter").hyperparameters({}).bottleneck == 64


def test_qlora_footprint_describes_the_4bit_recipe():
    footprint = _footprint("qlora", "llama-3.1-8b")
    assert footprint.quantized_base and footprint.upcast_unquantized_fp32 and footprint.forces_gradient_checkpointing
    assert footprint.trainable_params == _footprint("lora", "llama-3.1-8b").trainable_params


def test_lora_counts_grow_with_rank_and_targets():
    r8, r16 = _footprint("lora", "llama-3.2-1b", r=8), _footprint("lora", "llama-3.2-1b", r=16)
    assert r16.trainable_params == 2 * r8.trainable_params
    qv = _footprint("lora", "llama-3.2-1b", target_modules=["q_proj", "v_proj"])
    # q: 2048 -> 2048, v: 2048 -> 512 (8 kv heads x 64), 16 layers
    assert qv.trainable_params == 16 * 16 * ((2048 + 2048) + (2048 + 512))
    assert qv.adapted_linears == ["q_proj", "v_proj"] and qv.adapter_rank == 16


def test_dora_adds_one_magnitude_per_output_feature():
    arch = resolve_model("gpt2").architecture
    extra = arch.num_layers * sum(linear.out_features for linear in arch.layer_linears())
    assert _footprint("dora", "gpt2").trainable_params == _footprint("lora", "gpt2").trainable_params + extra


def test_soft_prompts_say_where_the_tokens_go():
    prefix, prompt = _footprint("prefix", "llama-3.2-1b"), _footprint("prompt_tuning", "llama-3.2-1b")
    assert (prefix.virtual_tokens, prefix.virtual_tokens_in) == (20, "kv")
    assert (prompt.virtual_tokens, prompt.virtual_tokens_in) == (20, "sequence")


def test_freeze_runs_backward_through_its_layers_only():
    footprint = _footprint("freeze", "llama-3.2-1b", trainable_layers=4)
    assert footprint.backward_layers == 4
    assert footprint.storage_params == resolve_model("llama-3.2-1b").architecture.total_params()


def test_ia3_default_mirrors_peft_per_family():
    # llama: k (512) and v (512) outputs, down_proj input (8192); 16 layers
    assert _footprint("ia3", "llama-3.2-1b").trainable_params == 16 * (512 + 512 + 8192)
    assert _footprint("ia3", "gpt2").trainable_params == 12 * (3 * 768 + 3072)


@pytest.mark.parametrize(
    "name, values, message",
    [("freeze", {"trainable_layers": 13}, "the model has 12 layers"),
     ("lora", {"target_modules": ["q_proj"]}, "unknown target module 'q_proj' for a gpt2 model; known: c_attn"),
     ("adapter", {"bottleneck": 768}, "smaller than the hidden size 768")],
)
def test_settings_that_do_not_fit_the_model_are_user_errors(name, values, message):
    with pytest.raises(UserError, match=message):
        _footprint(name, "gpt2", **values)
