"""Measure peak GPU memory and tokens/s of real training steps (the calibration's reference recipe).

Standalone on purpose: it needs only torch, transformers and peft (plus
bitsandbytes for qlora), not advisor, so it runs on a bare GPU machine. For
every point of the grid given on the command line it builds the model randomly
initialised from its public config directly on the device, prepares it for the
method, runs N steps of

    out = model(input_ids=ids, labels=ids); out.loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)

with `torch.optim.AdamW(trainable, fused=True)` and SDPA attention, and appends
one JSON line per point to benchmarks/results/gpu_runs.jsonl with the fields of
../shared/calibration/README.md (peak_alloc_gib = max_memory_allocated minus
what was allocated before the model was built; tokens_per_s = batch*seq over
the median time of steps 3..N; status ok/oom). The step's output object stays
referenced until the backward pass ends, as in the calibration measurements
(their peaks include the logits and the KV cache held by it).

Each point runs in a fresh subprocess so the caching allocator starts empty.

    python benchmarks/gpu_memory_harness.py --model mistral-7b --method lora qlora \\
        --batch 1 4 --seq 512 2048 --grad-ckpt 0 1
    python benchmarks/gpu_memory_harness.py --model path/to/config.json --method full_bf16 --batch 2 --seq 1024
    python benchmarks/gpu_memory_harness.py --device cpu --model tiny.json --method lora --batch 1 --seq 16 --steps 2

Methods: lora, qlora, full_bf16, full_mixed, prompt, prefix, freeze2 (see the
calibration README); --rank, --virtual-tokens and --trainable-layers change
their defaults (16, 20, 2), and the run records them under "hyperparameters".
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 2**30
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gpu_runs.jsonl"
METHODS = ("lora", "qlora", "full_bf16", "full_mixed", "prompt", "prefix", "freeze2")

#: Public config.json values of the catalog models (advisor's knowledge/models.toml), so no hub access is needed.
CONFIGS = {
    "gpt2": dict(model_type="gpt2", n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=2048),
    "qwen2.5-0.5b": dict(model_type="qwen2", num_hidden_layers=24, hidden_size=896, intermediate_size=4864,
                         num_attention_heads=14, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "qwen2.5-1.5b": dict(model_type="qwen2", num_hidden_layers=28, hidden_size=1536, intermediate_size=8960,
                         num_attention_heads=12, num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "qwen2.5-7b": dict(model_type="qwen2", num_hidden_layers=28, hidden_size=3584, intermediate_size=18944,
                       num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False,
                       max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6),
    "llama-3.2-1b": dict(model_type="llama", num_hidden_layers=16, hidden_size=2048, intermediate_size=8192,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True,
                         head_dim=64, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5),
    "llama-3.2-3b": dict(model_type="llama", num_hidden_layers=28, hidden_size=3072, intermediate_size=8192,
                         num_attention_heads=24, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True,
                         head_dim=128, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5),
    "llama-3.1-8b": dict(model_type="llama", num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False,
                         max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5),
    "mistral-7b": dict(model_type="mistral", num_hidden_layers=32, hidden_size=4096, intermediate_size=14336,
                       num_attention_heads=32, num_key_value_heads=8, vocab_size=32768, tie_word_embeddings=False,
                       max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-5),
    "all-minilm-l6-v2": dict(model_type="bert", num_hidden_layers=6, hidden_size=384, intermediate_size=1536,
                             num_attention_heads=12, vocab_size=30522, max_position_embeddings=512, type_vocab_size=2),
}


def load_config(model: str) -> dict:
    """A catalog id, a config.json file, or a directory holding one."""
    if model in CONFIGS:
        return dict(CONFIGS[model])
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise SystemExit(f"error: unknown model '{model}'; known: {', '.join(CONFIGS)} (or a config.json path)")
    return json.loads(path.read_text())


def model_name(model: str) -> str:
    return model if model in CONFIGS else Path(model).stem if Path(model).is_file() else Path(model).name


# -- one measurement (runs inside its own process) ---------------------------------------------


def hf_config(config_dict: dict):
    from transformers import AutoConfig

    values = dict(config_dict)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    config._attn_implementation = "sdpa"
    return config


def auto_class(config):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if config.model_type == "bert" else AutoModelForCausalLM


def save_random_checkpoint(config_dict: dict, device: str, directory: Path) -> None:
    """qlora only: bitsandbytes quantises while loading, so the random bf16 model is saved first (not measured)."""
    import torch

    config = hf_config(config_dict)
    with torch.device(device):
        auto_class(config).from_config(config, dtype=torch.bfloat16).save_pretrained(directory)
    torch.cuda.empty_cache()


def build(config_dict: dict, method: str, hp: dict, device: str, grad_ckpt: bool, checkpoint: Path):
    """The model of the recipe, on `device`, with only the method's parameters trainable."""
    import torch

    config = hf_config(config_dict)
    auto = auto_class(config)
    task = "SEQ_CLS" if config.model_type == "bert" else "CAUSAL_LM"
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        model = auto.from_pretrained(checkpoint, quantization_config=quant, attn_implementation="sdpa",
                                     device_map={"": torch.cuda.current_device()})
    else:
        dtype = torch.float32 if method == "full_mixed" else torch.bfloat16
        with torch.device(device):
            model = auto.from_config(config, dtype=dtype)
    model.train()
    return _prepare(model, method, hp, grad_ckpt, task)


def _prepare(model, method: str, hp: dict, grad_ckpt: bool, task: str):
    import peft

    checkpointing = {"use_reentrant": False}
    if method == "qlora":
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                     gradient_checkpointing_kwargs=checkpointing)
    elif grad_ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if method in ("lora", "qlora"):
        config = peft.LoraConfig(r=hp["rank"], lora_alpha=2 * hp["rank"], lora_dropout=0.05,
                                 target_modules="all-linear", task_type=task)
        return peft.get_peft_model(model, config)
    if method in ("prompt", "prefix"):
        kind = peft.PromptTuningConfig if method == "prompt" else peft.PrefixTuningConfig
        return peft.get_peft_model(model, kind(num_virtual_tokens=hp["virtual_tokens"], task_type=task))
    if method == "freeze2":
        layers = _layers(model)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for layer in layers[-hp["trainable_layers"]:]:
            for parameter in layer.parameters():
                parameter.requires_grad_(True)
    return model


def _layers(model):
    """The transformer layers: gpt2 `h`, llama/qwen2/mistral `layers`, bert `layer`."""
    import torch

    for module in model.modules():
        for name in ("h", "layers", "layer"):
            candidate = getattr(module, name, None)
            if isinstance(candidate, torch.nn.ModuleList) and len(candidate):
                return list(candidate)
    raise SystemExit("error: cannot find the transformer layers of this model")


def measure(point: dict) -> dict:
    """Run the recipe for one grid point and return its JSON record."""
    import torch

    device = point["device"]
    cuda = device.startswith("cuda")
    record = {key: point[key] for key in ("model", "method", "batch", "seq", "grad_ckpt")}
    record["hyperparameters"] = point["hyperparameters"]
    record["config"] = point["config"]
    config = load_config(point["config"])
    encoder = config["model_type"] == "bert"
    checkpoint = Path(tempfile.mkdtemp(prefix="harness-"))
    if point["method"] == "qlora":
        save_random_checkpoint(config, device, checkpoint)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    try:
        model = build(config, point["method"], point["hp"], device, point["grad_ckpt"], checkpoint)
        if cuda:
            record["after_load_gib"] = (torch.cuda.memory_allocated() - base) / GIB
        trainable = [p for p in model.parameters() if p.requires_grad]
        record["trainable"] = sum(p.numel() for p in trainable)
        record["total_params"] = sum(p.numel() for p in model.parameters())
        optimizer = torch.optim.AdamW(trainable, fused=cuda)
        generator = torch.Generator(device="cpu").manual_seed(0)
        vocab = config["vocab_size"]
        ids = torch.randint(0, vocab, (point["batch"], point["seq"]), generator=generator).to(device)
        labels = torch.zeros(point["batch"], dtype=torch.long, device=device) if encoder else ids
        autocast = torch.autocast(device_type="cuda" if cuda else "cpu", dtype=torch.bfloat16,
                                  enabled=point["method"] == "full_mixed")
        times = []
        for _ in range(point["steps"]):
            start = time.perf_counter()
            with autocast:
                out = model(input_ids=ids, labels=labels)
                out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            del out
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        median = statistics.median(times[2:] if len(times) > 2 else times)
        record.update(step_s_median=median, tokens_per_s=point["batch"] * point["seq"] / median, status="ok")
    except torch.OutOfMemoryError:
        record.update(status="oom", step_s_median=None, tokens_per_s=None)
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    if cuda:
        record["peak_alloc_gib"] = (torch.cuda.max_memory_allocated() - base) / GIB
        record["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
        properties = torch.cuda.get_device_properties(torch.cuda.current_device())
        record["gpu_name"] = properties.name
        record["device_memory_gib"] = properties.total_memory / GIB
    else:
        record["peak_alloc_gib"] = None
    record.update(_versions(), device=device)
    return record


def _versions() -> dict:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


# -- the grid ------------------------------------------------------------------------------------


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", required=True, help="catalog ids, config.json files or directories")
    parser.add_argument("--method", nargs="+", required=True, choices=METHODS)
    parser.add_argument("--batch", nargs="+", type=int, required=True)
    parser.add_argument("--seq", nargs="+", type=int, required=True)
    parser.add_argument("--grad-ckpt", nargs="+", type=int, choices=(0, 1), default=[0])
    parser.add_argument("--rank", type=int, default=16, help="LoRA rank (alpha = 2 x rank)")
    parser.add_argument("--virtual-tokens", type=int, default=20, help="prompt/prefix tuning length")
    parser.add_argument("--trainable-layers", type=int, default=2, help="freeze2: last layers trained")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a dry run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON lines file to append to")
    parser.add_argument("--point", help=argparse.SUPPRESS)  # internal: one grid point, as JSON
    return parser.parse_args(argv)


def points(args: argparse.Namespace):
    hp = {"rank": args.rank, "virtual_tokens": args.virtual_tokens, "trainable_layers": args.trainable_layers}
    for model, method, batch, seq, ckpt in itertools.product(args.model, args.method, args.batch, args.seq,
                                                            args.grad_ckpt):
        recorded = {"lora": {"r": args.rank}, "qlora": {"r": args.rank},
                    "prompt": {"num_virtual_tokens": args.virtual_tokens},
                    "prefix": {"num_virtual_tokens": args.virtual_tokens},
                    "freeze2": {"trainable_layers": args.trainable_layers}}.get(method, {})
        yield {"model": model_name(model), "config": model, "method": method, "batch": batch, "seq": seq,
               "grad_ckpt": bool(ckpt or method == "qlora"), "hp": hp, "hyperparameters": recorded,
               "steps": args.steps, "device": args.device}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.point:
        print(json.dumps(measure(json.loads(args.point))))
        return 0
    for model in args.model:
        load_config(model)  # an unknown model stops the grid before anything runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    for point in points(args):
        run = subprocess.run([sys.executable, __file__, "--model", "-", "--method", point["method"], "--batch", "1",
                              "--seq", "1", "--point", json.dumps(point)],
                             capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
        if run.returncode or not lines:
            failures += 1
            print(f"failed: {point['model']} {point['method']} b{point['batch']} s{point['seq']}: "
                  f"{(run.stderr.strip().splitlines() or ['no output'])[-1]}", file=sys.stderr)
            continue
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(lines[-1] + "\n")
        record = json.loads(lines[-1])
        peak = record.get("peak_alloc_gib")
        print(f"{record['model']} {record['method']} b{record['batch']} s{record['seq']} ckpt={int(record['grad_ckpt'])}: "
              f"{record['status']}, peak {'-' if peak is None else f'{peak:.2f} GiB'}, "
              f"{record.get('tokens_per_s') or 0:,.0f} tokens/s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
