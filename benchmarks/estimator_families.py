"""The estimator's saved activations against autograd, per family x method x precision, on tiny CPU models.

Each tiny model (tests/estimate/tiny_models.py: 2 layers, hidden 64, batch 2 x
64 tokens) is built from its config in bf16 and fp32, made trainable by the
method plugin, and run forward once; the bytes of the tensors autograd saves for
backward (saved_tensors_hooks, one storage once, parameters left out) are
compared with the estimate's `ForwardState.saved_for_backward` (kernel="cpu").
The method variants (LoRA without dropout, DoRA, IA3) are compared as the tests
compare them: every byte the forward pass leaves allocated (profiler) against
`ForwardState.alive`, in bf16. Nothing here is fitted: the formulas are written
from the modules' code, and these models are not used to tune them.

    .venv/bin/python benchmarks/estimator_families.py            # table on stdout
    .venv/bin/python benchmarks/estimator_families.py --out benchmarks/results/estimator_families.md

The same figures are asserted, with their tolerances, by tests/estimate/test_activations.py and
tests/estimate/test_family_activations.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.estimate import tiny_models as tm  # noqa: E402
from tests.estimate.test_family_activations import NO_DROPOUT  # noqa: E402

from advisor.estimate import memory  # noqa: E402

BATCH, SEQ = 2, 64
FAMILIES = ("llama", "qwen2", "gpt2", "bert", "qwen3", "gemma2", "gemma3", "phi3", "mixtral", "qwen3_moe",
            "qwen3_moe_normalised", "gpt_oss", "deepseek_v2", "deepseek_v2_grouped", "deepseek_v3")
VARIANTS = (("lora p=0", "lora", {"r": 8, "dropout": 0.0}), ("dora", "dora", {"r": 8}),
            ("dora p=0", "dora", {"r": 8, "dropout": 0.0}), ("ia3", "ia3", {}))


def shape(family: str, dtype: str) -> memory.Shape:
    return memory.Shape(precision="fp32" if dtype == "float32" else "bf16", batch=BATCH, seq=SEQ,
                        gradient_checkpointing=False, optimizer="adamw", head=tm.head(family), num_labels=2)


def predicted_state(family: str, method: str, hp: dict, dtype: str) -> memory.ForwardState:
    return memory.forward_state(tm.architecture(family), tm.footprint(family, method, **hp), shape(family, dtype),
                                kernel="cpu")


def saved_deviation(family: str, method: str, dtype: str) -> tuple[int, float]:
    """(measured bytes, predicted / measured - 1) for the tensors saved for backward."""
    hp = {}
    if method == "lora":
        hp = {"r": 8, **({"dropout": 0.0} if family in NO_DROPOUT else {})}
    model = tm.build(family, dtype, method, **hp)
    measured = tm.saved_tensor_bytes(model, tm.batch(family, BATCH, SEQ))
    return measured, predicted_state(family, method, hp, dtype).saved_for_backward / measured - 1


def alive_deviation(family: str, method: str, hp: dict) -> tuple[int, float]:
    """(measured bytes, predicted / measured - 1) for every byte the bf16 forward pass leaves allocated."""
    model = tm.build(family, "bfloat16", method, **hp)
    measured = tm.bytes_alive_after_forward(model, tm.batch(family, BATCH, SEQ))
    return measured, predicted_state(family, method, hp, "bfloat16").alive / measured - 1


def percent(deviation: float) -> str:
    return "exact" if abs(deviation) < 5e-7 else f"{deviation * 100:+.2f}%"


def report() -> str:
    lines = [
        "# Saved activations: estimate vs autograd, per family",
        "",
        f"Tiny models from config (tests/estimate/tiny_models.py), batch {BATCH} x {SEQ} tokens, CPU kernels; "
        "deviation = predicted / measured - 1. LoRA r 8 on all linears (dropout 0.05; 0 for DeepSeek, whose "
        "experts peft adapts only without dropout). Regenerate: "
        "`.venv/bin/python benchmarks/estimator_families.py --out benchmarks/results/estimator_families.md`.",
        "",
        "| family | full bf16 | full fp32 | LoRA bf16 | LoRA fp32 | saved bytes (full bf16) |",
        "|---|---|---|---|---|---|",
    ]
    for family in FAMILIES:
        cells, reference = [], 0
        for method in ("full", "lora"):
            for dtype in ("bfloat16", "float32"):
                measured, deviation = saved_deviation(family, method, dtype)
                reference = reference or measured
                cells.append(percent(deviation))
        lines.append(f"| {family} | " + " | ".join(cells) + f" | {reference:,} |")
    lines += [
        "",
        "Method variants, bf16, bytes alive after the forward pass (profiler) vs `ForwardState.alive`:",
        "",
        "| family | " + " | ".join(name for name, _, _ in VARIANTS) + " |",
        "|---|" + "---|" * len(VARIANTS),
    ]
    for family in ("llama", "gpt2", "bert"):
        cells = [percent(alive_deviation(family, method, hp)[1]) for _, method, hp in VARIANTS]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    table = report()
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
