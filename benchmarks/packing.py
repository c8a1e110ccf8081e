"""Packing on the CPU: the Alpaca seed tasks trained with and without padding-free packed rows.

Both runs go through `advisor execute` (the local backend) with the same plan
but `packing`, on a small Llama built from a config with a BPE tokenizer
trained on the data (no download), the same seed and the same batches.
Reports wall time, real (non-padding) tokens per second and both loss
curves, and writes benchmarks/results/packing.md and .json.

    .venv/bin/python benchmarks/packing.py                 # the figure: one epoch (a few minutes on 2 cores)
    .venv/bin/python benchmarks/packing.py --max-steps 4   # a quick check that it works, not a figure
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Optional

from advisor.cli.main import main as advisor
from advisor.data import load_records
from advisor.models import DataHandling, Plan, Profile, Recommendation, Training, TrainingHyperparameters

RESULTS = Path(__file__).resolve().parent / "results"
SEED_TASKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca-seed-tasks" / "seed_tasks.jsonl"


def build_model(data: Path, directory: Path) -> None:
    """A 4-layer Llama (hidden 256) and a 4k-token byte-level BPE trained on the data itself."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [" ".join(record.values()) for record in load_records(str(data)).records]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=4096, special_tokens=["<unk>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                        pad_token="</s>")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def plan(model: Path, packing: bool) -> Plan:
    hyperparameters = TrainingHyperparameters(
        learning_rate=1e-3, epochs=1, batch_size=8, seq_len=2048, warmup_ratio=0.0, early_stopping_patience=None,
        packing=packing,
    )
    return Plan(
        profile=Profile(goal="behavior", task="instruction", model=str(model), gpu="cpu"),
        recommendation=Recommendation(approach="full_finetune", method="full", summary="packing benchmark"),
        training=Training(method="full", precision="fp32", hyperparameters=hyperparameters,
                          data=DataHandling(validation_ratio=0.0, seed=42)),
    )


def run(model: Path, data: Path, work: Path, packing: bool, max_steps: Optional[int]) -> dict:
    name = "packed" if packing else "padded"
    plan_file = work / f"{name}.json"
    plan_file.write_text(plan(model, packing).model_dump_json(), encoding="utf-8")
    out = work / name
    steps = ["--max-steps", str(max_steps)] if max_steps else []
    code = advisor(["execute", str(plan_file), "--data", str(data), "--output-dir", str(out), "--no-probe", *steps])
    if code != 0:
        sys.exit(f"the {name} run failed (exit {code})")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    main = metrics["main"]
    return {"runtime_s": main["runtime_s"], "steps": main["steps"],
            "losses": [entry["loss"] for entry in main["losses"]]}


def real_tokens(model: Path, data: Path) -> int:
    """Non-padding tokens in one epoch: what both runs train on."""
    from transformers import AutoTokenizer

    from advisor.backends.tasks import encode_records

    loaded = load_records(str(data))
    encoded = encode_records(loaded.records, loaded.format, AutoTokenizer.from_pretrained(model), 2048)
    return sum(len(feature["input_ids"]) for feature in encoded.features if feature is not None)


def write_results(rows: dict, tokens: int, args: argparse.Namespace) -> None:
    padded, packed = rows["padded"], rows["packed"]
    differences = [abs(a - b) for a, b in zip(padded["losses"], packed["losses"])]
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "max_steps": args.max_steps, "real_tokens": tokens,
        "padded": {**padded, "tokens_per_s": round(tokens / padded["runtime_s"], 1)},
        "packed": {**packed, "tokens_per_s": round(tokens / packed["runtime_s"], 1)},
        "speedup": round(padded["runtime_s"] / packed["runtime_s"], 3),
        "loss_max_abs_difference": round(max(differences), 6),
        "loss_mean_abs_difference": round(statistics.fmean(differences), 6),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "packing.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "packing.md").write_text(
        "# Packing: Alpaca seed tasks, CPU\n\n"
        f"`python benchmarks/packing.py` (one epoch) on {summary['machine']}: a 4-layer Llama "
        "(hidden 256, 4k BPE vocabulary trained on the data), full fine-tuning, fp32, micro-batch 8, "
        "seq_len 2048 (the longest row fits), the same seed and batches in both runs.\n\n"
        "| run | wall time (s) | real tokens/s | final loss |\n|---|---|---|---|\n"
        f"| padded | {padded['runtime_s']:.1f} | {summary['padded']['tokens_per_s']} | {padded['losses'][-1]:.4f} |\n"
        f"| packed | {packed['runtime_s']:.1f} | {summary['packed']['tokens_per_s']} | {packed['losses'][-1]:.4f} |\n\n"
        f"Speed-up {summary['speedup']}x; per-step losses differ by at most {summary['loss_max_abs_difference']} "
        f"(mean {summary['loss_mean_abs_difference']}) over {len(differences)} steps.\n",
        encoding="utf-8",
    )
    print(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SEED_TASKS, help="alpaca data (default: the shared seed tasks)")
    parser.add_argument("--max-steps", type=int, help="stop early: a smoke test (tokens/s then counts the epoch)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="advisor-packing-") as scratch:
        work = Path(scratch)
        build_model(args.data, work / "model")
        rows = {name: run(work / "model", args.data, work, name == "packed", args.max_steps)
                for name in ("padded", "packed")}
        write_results(rows, real_tokens(work / "model", args.data), args)


if __name__ == "__main__":
    main()
