"""The accelerate backend: the same run on several GPUs through `accelerate launch`, with a generated config.

`advisor execute --backend accelerate` calls `execute`. It writes three files
into the output directory and runs the second (unless --dry-run):

- accelerate_config.yaml: accelerate's own ClusterConfig, from the plan, never
  from a user's default config (a stale default silently turned FSDP on,
  axolotl #394): DDP; FSDP wrapping the model's decoder-layer class, read from
  the model (transformers' `_no_split_modules`, else the class repeated in the
  layer stack), not guessed (accelerate #1943); DeepSpeed ZeRO-2/3 when
  deepspeed is importable, FSDP in its place otherwise;
- launch.sh: `accelerate launch --config_file accelerate_config.yaml train.py "$@"`;
- train.py: a script that runs plan.json (copied next to it) on the data with
  the local backend in each process; `--resume` and `--max-steps` pass through.

The sharding comes from the plan's estimate (`estimate.config.sharding`, what
the fit search chose) and the mixed precision from the plan's GPU, so a
config generated on a laptop is right for the cluster it names.

A plan for `--gpu cpu` with `num_gpus` N > 1 gets N CPU processes (gloo): the
same files, DDP or FSDP2, runnable without a GPU (CI runs them with N=2).
Under FSDP, checkpoints stay sharded (each process writes its part; --resume
reads them back) and the final model is gathered whole and written by the
first process (local._save_model), so plain `from_pretrained` loads it.
Activation checkpointing under FSDP is the Trainer's alone (the plan's
`gradient_checkpointing`); the config's `fsdp_activation_checkpointing` stays
off, as transformers refuses both.
An out-of-memory error in any process stops the whole launch (local.py):
the processes cannot change shape one at a time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict

from ..errors import EXIT_INTERRUPTED, UserError
from ..knowledge_base import resolve_gpu
from ..precision import resolve_dtypes
from . import artifacts
from .loading import model_type_of
from .manifest import MANIFEST_FILE, build_manifest, check_resume, load_manifest
from .prepared import Prepared

CONFIG_FILE = "accelerate_config.yaml"
LAUNCH_FILE = "launch.sh"
SCRIPT_FILE = "train.py"
LAUNCH_FILES = (CONFIG_FILE, LAUNCH_FILE, SCRIPT_FILE, artifacts.PLAN_FILE)


class LaunchFiles(BaseModel):
    """What `--dry-run` wrote, as its --json output."""

    model_config = ConfigDict(extra="forbid")

    config: str
    launch: str
    script: str
    command: str
    distributed_type: str
    num_processes: int
    mixed_precision: str
    wrap_class: Optional[str] = None
    notes: list[str] = []


def sharding_of(plan: Any) -> str:
    estimated = (plan.estimate.config if plan.estimate else {}).get("sharding")
    return estimated or ("ddp" if plan.profile.num_gpus > 1 else "none")


def decoder_layer_class(model_type: str, kind: str) -> str:
    """The class of the model's repeated transformer layer: what FSDP wraps one unit at a time."""
    import torch
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING,
    )

    config = AutoConfig.for_model(model_type)
    mapping = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING if kind == "classification" else MODEL_FOR_CAUSAL_LM_MAPPING
    model_class = mapping[type(config)]
    if getattr(model_class, "_no_split_modules", None):
        return model_class._no_split_modules[0]
    config.num_hidden_layers = 2  # enough to see the repeated layer; built on the meta device, no memory
    with torch.device("meta"):
        model = model_class(config)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == config.num_hidden_layers:
            return type(module[0]).__name__
    raise UserError(f"cannot find the repeated layer class of a '{model_type}' model for FSDP wrapping")


def cluster_config(prepared: Prepared) -> tuple[Any, LaunchFiles]:
    """accelerate's ClusterConfig for the plan, and a description of it."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import ComputeEnvironment, DistributedType

    plan = prepared.request.plan
    hp = prepared.hp
    gpu = resolve_gpu(plan.profile.gpu)
    precision = resolve_dtypes(plan.training.precision, cuda=gpu.cuda, bf16=gpu.bf16)
    sharding = sharding_of(plan)
    notes: list[str] = []
    if sharding in ("zero2", "zero3") and importlib.util.find_spec("deepspeed") is None:
        notes.append(f"the plan shards with DeepSpeed {sharding} but deepspeed is not installed: FSDP instead "
                     f"({'parameters, gradients and optimizer state' if sharding == 'zero3' else 'gradients and optimizer state'} sharded)")
        sharding = "fsdp" if sharding == "zero3" else "fsdp_grad_op"
    if prepared.method.quantized and sharding != "none" and sharding != "ddp":
        raise UserError(
            f"method '{prepared.method.name}' keeps the base in 4 bits, which FSDP and ZeRO-3 cannot shard "
            "here (peft #1844); set plan.json estimate.config.sharding to 'ddp' (each GPU holds the 4-bit base), "
            "or training.method to 'lora'"
        )
    num_processes = plan.profile.num_gpus  # on a CPU profile: that many CPU processes
    wrap_class = None
    fsdp_config = deepspeed_config = None
    if sharding == "none" or num_processes == 1 and sharding == "ddp":
        distributed = DistributedType.NO
    elif sharding == "ddp":
        # Also on CPU (use_cpu: the Trainer's processes join a gloo group): accelerate 1.15 starts N processes
        # (torchrun) only for a multi-device type; its MULTI_CPU config starts one unless mpirun is set up.
        distributed = DistributedType.MULTI_GPU
    elif sharding.startswith("fsdp"):
        distributed = DistributedType.FSDP
        wrap_class = decoder_layer_class(model_type_of(prepared.source, plan.profile.model), prepared.kind)
        fsdp_config = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": wrap_class,
            "fsdp_reshard_after_forward": sharding == "fsdp",
            # Checkpoints: each process writes its shard. The final model is gathered whole (local._save_model).
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,  # accelerate launch requires it with cpu_ram_efficient_loading
            "fsdp_offload_params": False,
            # Activation checkpointing is the Trainer's (the plan's gradient_checkpointing), never also FSDP's:
            # transformers refuses both, and FSDP's wraps each layer in a checkpoint wrapper whose module names
            # peft does not strip, so a LoRA adapter gathered for the final save came out empty (measured).
            "fsdp_activation_checkpointing": False,
        }
    else:
        distributed = DistributedType.DEEPSPEED
        deepspeed_config = {
            "zero_stage": 3 if sharding == "zero3" else 2,
            "gradient_accumulation_steps": hp.gradient_accumulation_steps,
            "gradient_clipping": hp.max_grad_norm,
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": sharding == "zero3",
            "zero3_save_16bit_model": sharding == "zero3",
        }
    if not gpu.cuda and num_processes > 1 and distributed != DistributedType.NO:
        notes.append(f"{num_processes} CPU processes over gloo: the config says {distributed.value} with use_cpu, "
                     "as accelerate launch starts several processes only for a multi-device type")
    mixed = precision.autocast or ("bf16" if precision.weights == "bfloat16" else "no")
    config = ClusterConfig(
        compute_environment=ComputeEnvironment.LOCAL_MACHINE, distributed_type=distributed, mixed_precision=mixed,
        use_cpu=not gpu.cuda, debug=False, num_processes=num_processes, num_machines=1, machine_rank=0,
        gpu_ids="all" if gpu.cuda else None, rdzv_backend="static", same_network=True,
        fsdp_config=fsdp_config, deepspeed_config=deepspeed_config,
    )
    described = LaunchFiles(
        config=CONFIG_FILE, launch=LAUNCH_FILE, script=SCRIPT_FILE, command="", distributed_type=distributed.value,
        num_processes=num_processes, mixed_precision=mixed, wrap_class=wrap_class, notes=notes,
    )
    return config, described


def launch_script(offline: bool) -> str:
    lines = [
        "#!/usr/bin/env bash",
        "# Generated by advisor: runs train.py in every process with the config next to it.",
        "# Arguments pass through to train.py (--resume, --max-steps N, --save-steps N).",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
    ]
    if offline:
        lines.append("export HF_HUB_OFFLINE=1  # the model is a local directory: nothing needs the Hub")
    lines.append(f'exec accelerate launch --config_file {CONFIG_FILE} {SCRIPT_FILE} "$@"')
    return "\n".join(lines) + "\n"


def training_script(prepared: Prepared) -> str:
    """train.py: plan.json next to it, the data path, the local backend in each process."""
    from .describe import resolved_run

    resolved = resolved_run(prepared).text()
    request = prepared.request
    return f'''#!/usr/bin/env python
"""Training script generated by `advisor execute --backend accelerate`.

Runs plan.json (next to this file) on the data below with the transformers
Trainer, as `advisor execute` does, in each process `accelerate launch`
starts. Needs `pip install "advisor[train]"`. Run it with `bash launch.sh`
(add --resume to continue from the last checkpoint). To change a setting,
edit plan.json (a changed plan cannot --resume an older checkpoint).

The run, as resolved when this file was written:

{resolved}
"""

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = {str(Path(request.data).resolve())!r}
SAVE_STEPS = {request.save_steps!r}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--max-steps", type=int, default={request.max_steps!r}, help="stop each model after N steps")
    parser.add_argument("--save-steps", type=int, default=SAVE_STEPS, help="checkpoint every N steps")
    args = parser.parse_args(argv)
    from advisor.backends.accelerate import run_generated

    return run_generated(HERE / "plan.json", DATA, HERE, args.resume, args.max_steps, args.save_steps)


if __name__ == "__main__":
    sys.exit(main())
'''


def write_launch_files(prepared: Prepared, output_dir: Path, config: Any, described: LaunchFiles) -> LaunchFiles:
    from .loading import is_local

    config.to_yaml_file(str(output_dir / CONFIG_FILE))
    (output_dir / LAUNCH_FILE).write_text(launch_script(is_local(prepared.source)), encoding="utf-8")
    (output_dir / LAUNCH_FILE).chmod(0o755)
    (output_dir / SCRIPT_FILE).write_text(training_script(prepared), encoding="utf-8")
    artifacts.write_json(output_dir / artifacts.PLAN_FILE, prepared.request.plan)
    described.command = f"bash {shlex.quote(str(output_dir / LAUNCH_FILE))}"
    return described


def execute(prepared: Prepared, as_json: bool) -> int:
    """Write the launch files; unless --dry-run, run them and return accelerate's exit status.

    The launch files replace only files advisor wrote (run-manifest.json lists
    them with their sha256): an earlier set of launch files, or with
    --overwrite a previous run, which is moved aside. A dry run changes
    nothing that exists: over a previous run it writes nothing and says so.
    """
    from ..documents import print_json

    request = prepared.request
    output_dir = Path(request.output_dir)
    if request.resume:
        # The files the checkpoints were made with stay as they are; the data and plan must not have changed.
        artifacts.prepare_output_dir(output_dir, resume=True, overwrite=False, launch_files=LAUNCH_FILES)
        check_resume(request)
        return _launch(output_dir, request, None)
    config, described = cluster_config(prepared)  # refusals (a 4-bit base sharded) before anything is written
    if request.dry_run and artifacts.check_output_dir(output_dir, False, request.overwrite, LAUNCH_FILES):
        print(f"nothing written: '{output_dir}' holds a previous run, which only a run without --dry-run "
              "replaces; or choose another --output-dir", file=sys.stderr)
        if as_json:
            print_json(described)
        return 0
    backup = artifacts.prepare_output_dir(output_dir, False, request.overwrite, launch_files=LAUNCH_FILES)
    files = _write_owned_launch_files(prepared, output_dir, config, described, backup)
    for note in files.notes:
        print(f"note: {note}", file=sys.stderr)
    if request.dry_run:
        if as_json:
            print_json(files)
        else:
            print(f"wrote {output_dir / CONFIG_FILE} ({launch_words(files)}), "
                  f"{output_dir / LAUNCH_FILE} and {output_dir / SCRIPT_FILE}")
            print(f"run it with: {files.command}")
        return 0
    return _launch(output_dir, request, backup)


DISTRIBUTED_WORDS = {"NO": "no distribution", "MULTI_GPU": "data parallel", "MULTI_CPU": "data parallel on CPUs",
                     "FSDP": "FSDP sharding", "DEEPSPEED": "DeepSpeed ZeRO"}


def launch_words(files: LaunchFiles) -> str:
    """The launch config in words: "data parallel, 4 processes, bf16 mixed precision, wraps LlamaDecoderLayer"."""
    processes = f"{files.num_processes} process" + ("" if files.num_processes == 1 else "es")
    precision = "full precision" if files.mixed_precision == "no" else f"{files.mixed_precision} mixed precision"
    words = [DISTRIBUTED_WORDS.get(files.distributed_type, files.distributed_type), processes, precision]
    if files.wrap_class:
        words.append(f"wraps {files.wrap_class}")
    return ", ".join(words)


def _write_owned_launch_files(
    prepared: Prepared, output_dir: Path, config: Any, described: LaunchFiles, backup: Optional[Path],
) -> LaunchFiles:
    """The launch files, recorded with their sha256 in a run manifest (the launched run keeps them recorded)."""
    earlier = load_manifest(output_dir)
    manifest = build_manifest(prepared.request, str(backup) if backup else None, earlier.files if earlier else None)
    artifacts.write_json(output_dir / MANIFEST_FILE, manifest)
    files = write_launch_files(prepared, output_dir, config, described)
    artifacts.record(output_dir, [output_dir / name for name in LAUNCH_FILES])
    return files


def _launch(output_dir: Path, request: Any, backup: Optional[Path]) -> int:
    """Run launch.sh in its own process group; Ctrl-C and SIGTERM are passed to every process in it, which save a
    checkpoint, while this one waits. A moved-aside previous run goes when the launched run completes and comes
    back when it fails or stops before its first checkpoint."""
    passthrough = [flag for flag, on in (("--resume", request.resume),) if on]
    if request.max_steps:
        passthrough += ["--max-steps", str(request.max_steps)]
    if request.save_steps:
        passthrough += ["--save-steps", str(request.save_steps)]
    process = subprocess.Popen(["bash", str(output_dir / LAUNCH_FILE), *passthrough], start_new_session=True)

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    previous = {stop: signal.signal(stop, forward) for stop in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = process.wait()
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    if code == 0:
        artifacts.drop_backup(str(backup) if backup else None)
    elif backup is not None:
        print(artifacts.settle_backup(output_dir, backup, interrupted=code == EXIT_INTERRUPTED), file=sys.stderr)
    return code


def run_generated(
    plan_path: Path, data: str, output_dir: Path, resume: bool, max_steps: Optional[int], save_steps: Optional[int],
) -> int:
    """train.py's body in each launched process: the local backend; one line for a user mistake."""
    from ..documents import load_plan
    from ..errors import EXIT_INTERRUPTED, EXIT_NO
    from . import local
    from .models import ExecuteRequest
    from .prepared import prepare

    try:
        request = ExecuteRequest(
            plan=load_plan(str(plan_path)), plan_path=str(plan_path), data=data, output_dir=str(output_dir),
            resume=resume, max_steps=max_steps, save_steps=save_steps, backend="accelerate",
        )
        prepared = prepare(request)
        if local.is_main_process():
            artifacts.prepare_output_dir(output_dir, resume, overwrite=False, launch_files=LAUNCH_FILES)
        local.run(prepared)
    except local.RunInterrupted as stop:
        print(f"interrupted: checkpoint saved at {stop.checkpoint}; resume with: bash {output_dir / LAUNCH_FILE} --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except UserError as error:
        # Another process's progress bar may hold the current line of the shared terminal: start a new one.
        print(("\n" if local.world_size() > 1 else "") + f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    except RuntimeError as error:
        if local.world_size() > 1 and _peer_exited(error):
            # Another process of the launch failed (out of memory, a user mistake) and printed why; torchrun's
            # summary names it. This one stops without a traceback of its own: one error line, not two.
            return EXIT_NO
        raise
    return 0


def _peer_exited(error: RuntimeError) -> bool:
    """A collective failed because another process closed its connection (gloo's words, torch 2.13).

    Over gloo the socket closes before torchrun stops this process (measured:
    RuntimeError "Connection closed by peer"); under NCCL a collective is
    expected to wait until torchrun's SIGTERM instead (not measured: no GPU).
    """
    return "closed by peer" in str(error) or "reset by peer" in str(error)
