"""Saved activations of the later families against autograd, on tiny CPU models (as test_activations.py).

Qwen3's q/k norms, Gemma's four fp32-multiplying norms and Gemma 2's eager
soft-capped attention and logits are priced tensor by tensor, and so are the
Mixtral, Qwen3-MoE (with and without norm_topk_prob) and gpt-oss routers and
grouped_mm expert routing, and DeepSeek-V2/V3's latent attention, dense first
layers, shared experts, sigmoid/group-limited routers and LoRA on their 3D
experts (peft's ParamWrapper), and Phi-3's fused projections. The tolerances
below are what each family reaches (0.1%: byte-exact on these shapes), and the
README's accuracy table reports them (benchmarks/estimator_families.py prints the
measured deviations).
"""

import pytest

from advisor.estimate import memory

from . import tiny_models as tm

BATCH, SEQ = 2, 64
#: family -> relative tolerance reached (full fine-tuning and LoRA, bf16 and fp32).
TOLERANCES = {"qwen3": 0.001, "gemma2": 0.005, "gemma3": 0.005, "phi3": 0.001, "mixtral": 0.001, "qwen3_moe": 0.001,
              "qwen3_moe_normalised": 0.001, "gpt_oss": 0.001, "deepseek_v3": 0.001, "deepseek_v2": 0.001,
              "deepseek_v2_grouped": 0.001}
CASES = [(family, method) for family in TOLERANCES for method in ("full", "lora")]
#: peft adapts DeepSeek's 3D experts (named by gate/up/down_proj) only without dropout.
NO_DROPOUT = ("deepseek_v2", "deepseek_v2_grouped", "deepseek_v3")


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("family, method", CASES)
def test_saved_tensors_match_within_the_family_tolerance(family, method, dtype):
    hp = {"r": 8, **({"dropout": 0.0} if family in NO_DROPOUT else {})} if method == "lora" else {}
    model = tm.build(family, dtype, method, **hp)
    measured = tm.saved_tensor_bytes(model, tm.batch(family, BATCH, SEQ))
    shape = memory.Shape(precision="fp32" if dtype == "float32" else "bf16", batch=BATCH, seq=SEQ,
                         gradient_checkpointing=False, optimizer="adamw", head="lm", num_labels=2)
    predicted = memory.forward_state(tm.architecture(family), tm.footprint(family, method, **hp), shape,
                                     kernel="cpu").saved_for_backward
    assert predicted == pytest.approx(measured, rel=TOLERANCES[family])
