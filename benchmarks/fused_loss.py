"""The fused / chunked cross-entropy: peak memory and tokens/s with and without it, on a 128K vocabulary.

A llama-shaped model built from a config (2 layers, hidden 256, Llama 3's
128,256-token vocabulary, untied head) trains with a LoRA adapter (r 8, on
q/v; the head frozen, as in the planner's 8B LoRA plans) on random tokens, a
few optimizer steps per variant:

- standard: transformers' own loss (full logits, fp32 upcast, two fp32
  gradients of that size);
- fused: on the CPU the chunked loss (backends/chunked_loss.py); on CUDA
  liger-kernel's fused linear cross-entropy, applied the way the Trainer
  applies it (transformers.integrations.liger.apply_liger_kernel), when it is
  installed, else the chunked loss.

Peak memory: on the CPU torch 2.13 has no allocator statistics, so each variant
runs in its own process and reads the kernel's peak resident set (VmHWM, reset
through /proc/self/clear_refs before the steps) minus the resident set before
them; tensors this large are mmap'd by glibc and returned on free, so the
figure follows the tensors. On CUDA: torch.cuda.max_memory_allocated.

    .venv/bin/python benchmarks/fused_loss.py                  # CPU figure -> benchmarks/results/fused_loss.md
    .venv/bin/python benchmarks/fused_loss.py --tokens 512     # quicker, smaller
    .venv/bin/python benchmarks/fused_loss.py --device cuda    # on a GPU: liger if installed (not yet measured)
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
VOCAB = 128256


def build(device: str):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=688, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
                         tie_word_embeddings=False, use_cache=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    return get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"])).to(device).train()


def apply_fused(model, device: str) -> str:
    """The fused loss the backend would use on this device; its name."""
    from advisor.backends.chunked_loss import LIGER_CONFIG, install_chunked_loss, liger_available

    if device == "cuda" and liger_available():
        from transformers.integrations.liger import apply_liger_kernel

        apply_liger_kernel(model, LIGER_CONFIG)
        return "liger fused linear cross-entropy"
    install_chunked_loss(model)
    return "chunked loss"


def rss_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_variant(variant: str, device: str, tokens: int, steps: int) -> dict:
    """One variant in this process: warm-up step, then `steps` timed steps; peak memory over the timed steps."""
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = build(device)
    loss_name = apply_fused(model, device) if variant == "fused" else "transformers ForCausalLMLoss"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (1, tokens), generator=generator).to(device)
    losses = []

    def step() -> None:
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())

    step()  # warm-up: optimizer states, allocator caches
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        before = rss_bytes("VmRSS")
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else rss_bytes("VmHWM")
    return {"variant": variant, "loss": loss_name, "device": device, "tokens": tokens, "steps": steps,
            "peak_above_start_mib": (peak - before) / 2**20, "tokens_per_s": tokens * steps / elapsed,
            "losses": losses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--tokens", type=int, default=1024, help="tokens per micro-batch (one row)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--variant", choices=("standard", "fused"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.device, args.tokens, args.steps)))
        return 0
    rows = []
    for variant in ("standard", "fused"):
        child = subprocess.run([sys.executable, __file__, "--variant", variant, "--device", args.device,
                                "--tokens", str(args.tokens), "--steps", str(args.steps)],
                               capture_output=True, text=True, check=True)
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr)
    write_results(rows, args)
    return 0


def write_results(rows: list[dict], args: argparse.Namespace) -> None:
    standard, fused = rows
    logits_mib = args.tokens * VOCAB * 4 / 2**20
    differences = [abs(a - b) for a, b in zip(standard["losses"], fused["losses"])]
    lines = [
        f"# Fused / chunked cross-entropy: {args.device.upper()}",
        "",
        f"`python benchmarks/fused_loss.py --device {args.device} --tokens {args.tokens} --steps {args.steps}` on "
        f"{platform.machine()}: a 2-layer llama-shaped model (hidden 256, {VOCAB:,}-token vocabulary, untied head), "
        f"LoRA r 8 on q/v, fp32, one row of {args.tokens} tokens per step, {args.steps} timed steps after a warm-up. "
        f"Peak = the most memory held during the timed steps above what was held before them "
        f"({'torch.cuda.max_memory_allocated' if args.device == 'cuda' else 'peak resident set, VmHWM, one process per variant'}).",
        "",
        "| loss | peak above start (MiB) | tokens/s |",
        "|---|---|---|",
        *(f"| {row['loss']} | {row['peak_above_start_mib']:.0f} | {row['tokens_per_s']:.0f} |" for row in rows),
        "",
        f"One fp32 copy of the logits is {logits_mib:.0f} MiB. The fused loss holds "
        f"{fused['peak_above_start_mib'] / standard['peak_above_start_mib']:.2f}x the standard peak, at "
        f"{fused['tokens_per_s'] / standard['tokens_per_s']:.2f}x its tokens/s; the losses of the same steps differ by "
        f"at most {max(differences):.1e}.",
    ]
    if args.device == "cpu":
        lines += ["", "The GPU figure (liger-kernel on CUDA, a ~1B model) is left for a device session: "
                  "`benchmarks/fused_loss.py --device cuda`."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fused_loss.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
