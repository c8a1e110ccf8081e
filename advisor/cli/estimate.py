"""`advisor estimate`: peak GPU memory, disk space and time for one model, method and shape.

Flags map onto an `EstimateRequest`; the method's own hyperparameters come
from the shortcuts (--lora-rank -> r, --num-virtual-tokens ->
num_virtual_tokens, --trainable-layers -> trainable_layers) and `--set
KEY=VALUE`, validated by the method plugin. `--json` prints the Estimate; the
human view is a table of the breakdown. Exit 1 when a --gpu is given and the
configuration does not fit it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, get_args

from ..errors import EXIT_NO, UserError
from ..documents import TooDeep, parse_json, print_json
from ..estimate.sharding import OFFLOADS
from ..models import (MAX_BATCH_SIZE, MAX_GPU_MEMORY_GIB, MAX_GPUS, MAX_NODES, MAX_PRICE_PER_HOUR, MAX_SEQ_LEN,
                      MAX_STEPS, MAX_TASKS, Offload, Sharding)
from .numbers import finite, whole

#: Shortcut flag (argparse dest) -> the method hyperparameter it sets.
SHORTCUTS = {"lora_rank": "r", "num_virtual_tokens": "num_virtual_tokens", "trainable_layers": "trainable_layers"}
#: Bounds of the flags the Profile does not bound: the method's own model bounds its hyperparameters
#: further; these keep the estimator's arithmetic finite.
MAX_HYPERPARAMETER = 2**20
MAX_LABELS = 10**6
MAX_TOKENS = 10**18


def register(subparsers) -> None:
    parser = subparsers.add_parser("estimate", help="peak GPU memory, storage and time of one training configuration")
    parser.add_argument("--model", required=True, help="catalog id or its hub id (see `advisor models`), or a local directory")
    parser.add_argument("--method", required=True, help="a method plugin name (see `advisor plugins`)")
    parser.add_argument("--precision", choices=["bf16", "mixed", "fp32"], default="bf16",
                        help="bf16: weights, gradients and states in bf16; mixed: fp32 weights + bf16 autocast")
    parser.add_argument("--batch-size", type=whole(1, MAX_BATCH_SIZE), default=1, help="micro-batch per device")
    parser.add_argument("--seq-len", type=whole(1, MAX_SEQ_LEN), default=512, help="tokens per example")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    parser.add_argument("--gradient-accumulation-steps", type=whole(1, MAX_STEPS), default=1, help="micro-batches per step")
    parser.add_argument("--lora-rank", type=whole(1, MAX_HYPERPARAMETER), help="LoRA rank (the method's 'r')")
    parser.add_argument("--num-virtual-tokens", type=whole(1, MAX_HYPERPARAMETER), help="soft-prompt length (prefix, prompt tuning)")
    parser.add_argument("--trainable-layers", type=whole(1, MAX_HYPERPARAMETER), help="last layers trained (freeze)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any method hyperparameter (repeatable); the value is JSON or a plain string")
    parser.add_argument("--head", choices=["lm", "classification"], default="lm", help="language-model or classifier head")
    parser.add_argument("--num-labels", type=whole(1, MAX_LABELS), default=2, help="classes of a classification head")
    parser.add_argument("--gpu", help="accelerator id or name (see `advisor gpus`); gives `fits` and time")
    parser.add_argument("--gpu-memory-gib", type=finite(0, MAX_GPU_MEMORY_GIB, low_included=False), help="overrides the catalog's memory per device")
    parser.add_argument("--num-gpus", type=whole(1, MAX_GPUS), default=1, help="devices per node (data parallel)")
    parser.add_argument("--num-nodes", type=whole(1, MAX_NODES), default=1, help="machines, each with --num-gpus devices")
    parser.add_argument("--sharding", choices=list(get_args(Sharding)), default=None,
                        help="multi-GPU scheme (default: ddp with several GPUs); hybrid: FSDP sharded within "
                             "each node, replicated across nodes")
    parser.add_argument("--offload", choices=list(get_args(Offload)), default="none",
                        help="kept in CPU memory: optimizer (zero2, zero3) or parameters too (fsdp, hybrid, zero3)")
    parser.add_argument("--optimizer", choices=["adamw", "adamw_8bit", "paged_adamw_8bit"], default="adamw")
    parser.add_argument("--adamw-implementation", choices=["fused", "foreach"], default="fused",
                        help="torch AdamW kernel: fused (advisor execute, the Trainer's default) or foreach "
                             "(torch.optim.AdamW's default on CUDA: one more gradient-sized copy at the step)")
    parser.add_argument("--tasks", type=whole(1, MAX_TASKS), default=1, help="tasks/variants stored (storage total)")
    parser.add_argument("--tokens", type=whole(1, MAX_TOKENS), help="training tokens of the whole run (for hours and cost)")
    parser.add_argument("--price-per-hour", type=finite(0, MAX_PRICE_PER_HOUR, low_included=True), help="price of one device-hour (for the cost)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)


def method_values(args: argparse.Namespace, accepted: list[str], method: str) -> dict[str, Any]:
    """The hyperparameters the flags give, refusing ones the method does not have."""
    values: dict[str, Any] = {}
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"invalid --set '{item}': expected KEY=VALUE")
        try:
            values[key.strip()] = parse_json(text)
        except TooDeep as error:
            raise UserError(f"invalid --set '{key.strip()}': the value is {error}")
        except json.JSONDecodeError:
            values[key.strip()] = text
    for dest, key in SHORTCUTS.items():
        if getattr(args, dest) is not None:
            values[key] = getattr(args, dest)
    unknown = [key for key in values if key not in accepted]
    if unknown:
        raise UserError(
            f"method '{method}' has no hyperparameter '{unknown[0]}'; it accepts: {', '.join(accepted) or 'none'}"
        )
    return values


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..errors import describe_validation_error
    from ..estimate import EstimateRequest, estimate
    from ..knowledge_base import device_memory_label, resolve_gpu, resolve_model
    from ..manager import footprint_of, get_method

    sharding = args.sharding or ("ddp" if args.num_gpus * args.num_nodes > 1 else "none")
    if sharding not in OFFLOADS[args.offload]:
        raise UserError(f"--offload {args.offload} needs --sharding {' or '.join(OFFLOADS[args.offload])}, "
                        f"not {sharding}")
    model = resolve_model(args.model)
    method = get_method(args.method)
    values = method_values(args, list(method.Hyperparameters.model_fields), method.name)
    try:
        hp = method.hyperparameters(values)
    except ValidationError as error:
        raise UserError(describe_validation_error(error, method.Hyperparameters))
    request = EstimateRequest(
        architecture=model.architecture,
        footprint=footprint_of(method, model.architecture, hp),
        precision=args.precision,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        gradient_checkpointing=args.gradient_checkpointing,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_gpus=args.num_gpus,
        num_nodes=args.num_nodes,
        sharding=sharding,
        offload=args.offload,
        optimizer=args.optimizer,
        adamw_implementation=args.adamw_implementation,
        head=args.head,
        num_labels=args.num_labels,
        gpu=resolve_gpu(args.gpu) if args.gpu else None,
        device_memory_gib=args.gpu_memory_gib,
        tasks=args.tasks,
        train_tokens=args.tokens,
        price_per_hour=args.price_per_hour,
    )
    result = estimate(request)
    if args.json:
        print_json(result)
    else:
        device = device_memory_label(args.gpu, result.device_memory_gib or 0.0, args.gpu_memory_gib is not None)
        render(result, model.id, method.name, device)
    return EXIT_NO if result.fits is False else 0


def render(result, model: str, method: str, device: str) -> None:
    """The breakdown as a rich table, then fit, storage and time in a few lines."""
    from rich.console import Console
    from rich.table import Table

    from .render import devices_layout, time_with_band

    memory = result.memory
    table = Table("part", "GiB", title=f"{model} / {method}: peak memory per device")
    for part, gib in sorted(memory.breakdown.items(), key=lambda item: -item[1]):
        table.add_row(part.replace("_", " "), f"{gib:.2f}")
    table.add_row("[bold]peak (max_memory_allocated)[/bold]", f"[bold]{memory.peak_gib:.2f}[/bold]")
    table.add_row("CUDA context + allocator slack", f"{memory.overhead_gib:.2f}")
    console = Console()
    console.print(table)
    console.print(f"trainable parameters: {result.trainable_params:,} of {result.total_params:,}")
    if result.fits is not None:
        verdict = "[green]fits[/green]" if result.fits else "[red]does not fit[/red]"
        need = memory.peak_gib + memory.overhead_gib
        console.print(f"{verdict}: needs {need:.1f} GiB of {device} per device")
    layout = devices_layout(result.config)
    if layout:
        console.print(f"devices: {layout}")
    if result.storage is not None:
        storage = result.storage
        kind = "full checkpoint" if storage.merged else "adapter"
        console.print(f"storage: {storage.per_task_mb:,.1f} MB per task ({kind}), {storage.total_mb:,.1f} MB in total")
    if result.time is not None:
        time = result.time
        line = f"speed: {time.tokens_per_s:,.0f} tokens/s"
        if time.train_tokens:
            line += f"; {time.train_tokens:,} tokens take {time_with_band(time)}"
        console.print(line)
