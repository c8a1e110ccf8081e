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
calibration README), and lora_fp16: LoRA on a frozen fp16 base (peft keeps the
adapters fp32) under fp16 autocast with a GradScaler, what a GPU without bf16
(T4, V100) runs (advisor.precision); --rank, --virtual-tokens and
--trainable-layers change their defaults (16, 20, 2), and the run records them
under "hyperparameters".
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
METHODS = ("lora", "qlora", "full_bf16", "full_mixed", "prompt", "prefix", "freeze2", "lora_fp16")
#: The recipes that train under autocast, and its dtype (the others run in the weights' own dtype).
AUTOCAST = {"full_mixed": "bfloat16", "lora_fp16": "float16"}

#: The model catalog, read as plain TOML (no advisor or pydantic needed on the GPU machine).
CATALOG = Path(__file__).resolve().parents[1] / "knowledge" / "models.toml"
#: Catalog field -> config.json key, per family; the other config values keep transformers' defaults,
#: which change neither memory nor speed (rope theta, norm epsilon).
CONFIG_KEYS = {
    "gpt2": dict(num_layers="n_layer", hidden_size="n_embd", num_heads="n_head", vocab_size="vocab_size",
                 max_position_embeddings="n_positions"),
    "default": dict(num_layers="num_hidden_layers", hidden_size="hidden_size", intermediate_size="intermediate_size",
                    num_heads="num_attention_heads", num_kv_heads="num_key_value_heads", vocab_size="vocab_size",
                    tied_embeddings="tie_word_embeddings", max_position_embeddings="max_position_embeddings",
                    type_vocab_size="type_vocab_size"),
}


def catalog_configs() -> dict[str, dict]:
    """config.json dicts of the catalog's models, built from knowledge/models.toml."""
    import tomllib

    configs = {}
    for entry in tomllib.loads(CATALOG.read_text(encoding="utf-8"))["model"]:
        keys = CONFIG_KEYS.get(entry["family"], CONFIG_KEYS["default"])
        configs[entry["id"]] = {"model_type": entry["family"],
                                **{keys[field]: value for field, value in entry.items() if field in keys}}
    return configs


def load_config(model: str, seq: int = 0) -> dict:
    """A catalog id, a config.json file, or a directory holding one; learned positions cover `seq`."""
    catalog = catalog_configs()
    if model in catalog:
        config = catalog[model]
    else:
        path = Path(model)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise SystemExit(f"error: unknown model '{model}'; known: {', '.join(catalog)} (or a config.json path)")
        config = json.loads(path.read_text())
    if "n_positions" in config:  # GPT-2's learned positions: the calibration widened them to its 2048 runs
        config["n_positions"] = max(config["n_positions"], seq)
    return config


def model_name(model: str) -> str:
    return model if model in catalog_configs() else Path(model).stem if Path(model).is_file() else Path(model).name


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
        dtype = {"full_mixed": torch.float32, "lora_fp16": torch.float16}.get(method, torch.bfloat16)
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
    if method in ("lora", "qlora", "lora_fp16"):
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
    config = load_config(point["config"], point["seq"])
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
        device_type = "cuda" if cuda else "cpu"
        autocast_dtype = AUTOCAST.get(point["method"])
        autocast = torch.autocast(device_type=device_type, dtype=getattr(torch, autocast_dtype or "bfloat16"),
                                  enabled=autocast_dtype is not None)
        # fp16 autocast needs loss scaling; its GradScaler refuses fp16 gradients, so only fp32 parameters train.
        scaler = torch.amp.GradScaler(device_type, enabled=autocast_dtype == "float16")
        times = []
        for _ in range(point["steps"]):
            start = time.perf_counter()
            with autocast:
                out = model(input_ids=ids, labels=labels)
                scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
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
        recorded = {"lora": {"r": args.rank}, "qlora": {"r": args.rank}, "lora_fp16": {"r": args.rank},
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
