"""The accelerate backend: the same run on several GPUs through `accelerate launch`, with a generated config.

`advisor execute --backend accelerate` calls `execute`. It writes these files
into the output directory and runs launch.sh (unless --dry-run):

- accelerate_config.yaml: accelerate's own ClusterConfig, from the plan, never
  from a user's default config (a stale default silently turned FSDP on,
  axolotl #394): DDP; FSDP wrapping the model's decoder-layer class, read from
  the model (transformers' `_no_split_modules`, else the class repeated in the
  layer stack), not guessed (accelerate #1943); hybrid sharding (HSDP) through
  accelerate's parallelism_config; DeepSpeed ZeRO-2/3 when deepspeed is
  importable, FSDP in its place otherwise; num_machines = the plan's num_nodes,
  num_processes = all machines' processes together; CPU offload as the plan says;
- launch.sh, launch.sbatch, sky.yaml (cluster_files.py): `accelerate launch`
  with this config on one machine, on each of several (MACHINE_RANK,
  MAIN_PROCESS_IP), under Slurm, under SkyPilot;
- train.py: a script that runs plan.json (copied next to it) on the data with
  the local backend in each process; `--resume` and `--max-steps` pass through.

A dry run for another machine (files_only in prepared.py) does not need the
model's tokenizer: offline, with the model not cached, it still writes every
file and leaves the token checks to the cluster.

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
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..errors import EXIT_INTERRUPTED, EXIT_NO, UserError
from ..estimate.sharding import OFFLOAD_NAMES
from ..knowledge_base import resolve_gpu
from ..precision import resolve_dtypes
from . import artifacts
from .loading import model_type_of
from .manifest import MANIFEST_FILE, build_manifest, check_resume, load_manifest
from .prepared import Prepared

CONFIG_FILE = "accelerate_config.yaml"
LAUNCH_FILE = "launch.sh"
SCRIPT_FILE = "train.py"
SBATCH_FILE = "launch.sbatch"
SKY_FILE = "sky.yaml"
LAUNCH_FILES = (CONFIG_FILE, LAUNCH_FILE, SCRIPT_FILE, SBATCH_FILE, SKY_FILE, artifacts.PLAN_FILE)
#: The saved dataset `python train.py --prepare-only` writes in the run folder: tokenised once, read by every rank.
TOKENIZED_DIR = "tokenized"
#: accelerate's (torchrun's) default port on the main machine.
DEFAULT_PORT = 29500


class LaunchFiles(BaseModel):
    """What `--dry-run` wrote, as its --json output."""

    model_config = ConfigDict(extra="forbid")

    config: str
    launch: str
    script: str
    command: str
    distributed_type: str
    num_processes: int = Field(description="processes on all machines together (accelerate's num_processes)")
    num_machines: int = 1
    mixed_precision: str
    wrap_class: Optional[str] = None
    hybrid: bool = Field(False, description="FSDP2 hybrid sharding: sharded within each machine, replicated across")
    offload: str = Field("none", description="what the engine keeps in CPU memory: none, optimizer or parameters")
    fused_loss: bool = Field(False, description="the LM head and cross-entropy without the full logits")
    sbatch: Optional[str] = Field(None, description="the Slurm batch script")
    sky: Optional[str] = Field(None, description="the SkyPilot task")
    node_commands: list[str] = Field([], description="the command to run on each machine, machine rank 0 first")
    notes: list[str] = []


def sharding_of(plan: Any) -> str:
    estimated = (plan.estimate.config if plan.estimate else {}).get("sharding")
    return estimated or ("ddp" if total_processes(plan) > 1 else "none")


def total_processes(plan: Any) -> int:
    """accelerate's num_processes counts every machine's: num_gpus per node x num_nodes (on CPU, processes)."""
    return plan.profile.num_gpus * plan.profile.num_nodes


def deepspeed_installed() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


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
    precision = resolve_dtypes(plan.training.precision, cuda=gpu.cuda, bf16=gpu.bf16,
                               frozen_base=prepared.freezes_base_weights)
    if prepared.method.requires_cuda and not gpu.cuda:
        raise UserError(f"method '{prepared.method.name}' needs a CUDA GPU and the plan's GPU is "
                        f"'{plan.profile.gpu}'; plan it for a CUDA GPU (--gpu h100, a100-80gb, ...)")
    num_nodes, num_processes = plan.profile.num_nodes, total_processes(plan)  # on a CPU profile: CPU processes
    offload = (plan.estimate.config if plan.estimate else {}).get("offload", "none")
    sharding, notes = _sharding_here(sharding_of(plan), plan.profile.num_gpus, num_nodes)
    if prepared.method.quantized and sharding in ("zero2", "zero3"):
        raise UserError(
            f"method '{prepared.method.name}' keeps the base in 4 bits: advisor shards a 4-bit base with FSDP2 "
            "(bnb_4bit_quant_storage in the compute dtype, as peft's FSDP + QLoRA guide does), not with DeepSpeed "
            "ZeRO (not measured here); set plan.json estimate.config.sharding to 'fsdp', 'hybrid' or 'ddp', "
            "or training.method to 'lora'"
        )
    wrap_class = None
    fsdp_config = deepspeed_config = parallelism_config = None
    offloaded = "none"  # what the engine written here keeps in CPU memory
    if sharding == "none" or num_processes == 1 and sharding == "ddp":
        distributed = DistributedType.NO
    elif sharding == "ddp":
        # Also on CPU (use_cpu: the Trainer's processes join a gloo group): accelerate 1.15 starts N processes
        # (torchrun) only for a multi-device type; its MULTI_CPU config starts one unless mpirun is set up.
        distributed = DistributedType.MULTI_GPU
    elif sharding in ("fsdp", "fsdp_grad_op", "hybrid"):
        distributed = DistributedType.FSDP
        wrap_class = decoder_layer_class(model_type_of(prepared.source, plan.profile.model), prepared.kind)
        fsdp_config = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": wrap_class,
            "fsdp_reshard_after_forward": sharding != "fsdp_grad_op",
            # Checkpoints: each process writes its shard. The final model is gathered whole (local._save_model).
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            # A 4-bit base loads whole in every process (transformers skips the meta device for a quantized
            # model, accelerate 1.15 skips its sync for Params4bit), so the switch is harmless for QLoRA.
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,  # accelerate launch requires it with cpu_ram_efficient_loading
            # FSDP2's CPUOffloadPolicy: parameters, their gradients and the optimizer step on the CPU together.
            "fsdp_offload_params": offload != "none",
            # Activation checkpointing is the Trainer's (the plan's gradient_checkpointing), never also FSDP's:
            # transformers refuses both, and FSDP's wraps each layer in a checkpoint wrapper whose module names
            # peft does not strip, so a LoRA adapter gathered for the final save came out empty (measured).
            "fsdp_activation_checkpointing": False,
        }
        offloaded = "parameters" if offload != "none" else "none"
        if offload == "optimizer":
            notes.append("FSDP2 offloads the optimizer state together with the parameters and gradients "
                         "(no optimizer-only offload): fsdp_offload_params is on")
        if sharding == "hybrid":
            # accelerate's own HSDP for FSDP2: a (replicate, shard) device mesh, ranks of one node in a shard group.
            parallelism_config = {"parallelism_config_dp_replicate_size": num_nodes,
                                  "parallelism_config_dp_shard_size": plan.profile.num_gpus}
    else:
        distributed = DistributedType.DEEPSPEED
        offload_params = offload == "parameters" and sharding == "zero3"
        offloaded = "parameters" if offload_params else "optimizer" if offload != "none" else "none"
        if offload == "parameters" and not offload_params:
            notes.append("ZeRO-2 keeps the parameters on the GPUs: only the optimizer state is offloaded")
        deepspeed_config = {
            "zero_stage": 3 if sharding == "zero3" else 2,
            "gradient_accumulation_steps": hp.gradient_accumulation_steps,
            "gradient_clipping": hp.max_grad_norm,
            "offload_optimizer_device": "cpu" if offload != "none" else "none",
            "offload_param_device": "cpu" if offload_params else "none",
            "zero3_init_flag": sharding == "zero3",
            "zero3_save_16bit_model": sharding == "zero3",
        }
    if offload != "none" and distributed in (DistributedType.NO, DistributedType.MULTI_GPU):
        notes.append(f"the plan offloads the {offload} to the CPU, which needs FSDP or DeepSpeed; "
                     "with data parallelism nothing is offloaded")
    if not gpu.cuda and num_processes > 1 and distributed != DistributedType.NO:
        notes.append(f"{num_processes} CPU processes over gloo: the config says {distributed.value} with use_cpu, "
                     "as accelerate launch starts several processes only for a multi-device type")
    mixed = precision.autocast or ("bf16" if precision.weights == "bfloat16" else "no")
    config = ClusterConfig(
        compute_environment=ComputeEnvironment.LOCAL_MACHINE, distributed_type=distributed, mixed_precision=mixed,
        use_cpu=not gpu.cuda, debug=False, num_processes=num_processes, num_machines=num_nodes, machine_rank=0,
        gpu_ids="all" if gpu.cuda else None, rdzv_backend="static", same_network=True,
        main_process_port=DEFAULT_PORT if num_nodes > 1 else None,
        fsdp_config=fsdp_config, deepspeed_config=deepspeed_config, parallelism_config=parallelism_config,
    )
    described = LaunchFiles(
        config=CONFIG_FILE, launch=LAUNCH_FILE, script=SCRIPT_FILE, command="", distributed_type=distributed.value,
        num_processes=num_processes, num_machines=num_nodes, mixed_precision=mixed, wrap_class=wrap_class,
        hybrid=parallelism_config is not None, offload=offloaded,
        fused_loss=bool(hp.fused_cross_entropy) and prepared.kind == "causal_lm", notes=notes,
    )
    return config, described


def _sharding_here(sharding: str, gpus_per_node: int, num_nodes: int) -> tuple[str, list[str]]:
    """The plan's sharding as this config can write it, with a note for each change."""
    if sharding in ("zero2", "zero3") and not deepspeed_installed():
        kept = "parameters, gradients and optimizer state" if sharding == "zero3" else "gradients and optimizer state"
        return ("fsdp" if sharding == "zero3" else "fsdp_grad_op"), [
            f"the plan shards with DeepSpeed {sharding} but deepspeed is not installed: FSDP instead ({kept} sharded)"]
    if sharding == "hybrid" and num_nodes == 1:
        return "fsdp", ["hybrid sharding on one machine is FSDP: every process holds a shard"]
    if sharding == "hybrid" and gpus_per_node == 1:
        return "ddp", ["hybrid sharding with one GPU per machine shards nothing: data parallel instead"]
    return sharding, []


def training_script(prepared: Prepared) -> str:
    """train.py: plan.json next to it, the data path, the local backend in each process."""
    from .describe import resolved_run

    resolved = resolved_run(prepared, total_processes(prepared.request.plan)).text() if prepared.encoded is not None else (
        f"model {prepared.request.plan.profile.model} ({prepared.source}); its tokenizer was not available where this "
        "file was written, so the token counts, split and schedule are resolved when the data is tokenised")
    request = prepared.request
    return f'''#!/usr/bin/env python
"""Training script generated by `advisor execute --backend accelerate`.

Runs plan.json (next to this file) on the data below with the transformers
Trainer, as `advisor execute` does, in each process `accelerate launch`
starts. Needs `pip install "advisor[train]"`. Run it with `bash launch.sh`
(add --resume to continue from the last checkpoint, on any number of
processes). `python train.py --prepare-only` tokenises the data once into
tokenized/, which every process then reads instead of tokenising it again
(launch.sh runs it first). To change a setting, edit plan.json (a changed
plan cannot --resume an older checkpoint).

The run, as resolved when this file was written:

{resolved}
"""

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = os.environ.get("ADVISOR_DATA") or {str(Path(request.data).resolve())!r}  # ADVISOR_DATA: the data elsewhere
SAVE_STEPS = {request.save_steps!r}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--max-steps", type=int, default={request.max_steps!r}, help="stop each model after N steps")
    parser.add_argument("--save-steps", type=int, default=SAVE_STEPS, help="checkpoint every N steps")
    parser.add_argument("--prepare-only", action="store_true",
                        help="tokenise the data once into tokenized/ (every process reads it), then exit")
    args = parser.parse_args(argv)
    from advisor.backends.accelerate import run_generated

    return run_generated(HERE / "plan.json", DATA, HERE, args.resume, args.max_steps, args.save_steps,
                         prepare_only=args.prepare_only)


if __name__ == "__main__":
    sys.exit(main())
'''


def write_launch_files(prepared: Prepared, output_dir: Path, config: Any, described: LaunchFiles) -> LaunchFiles:
    from . import cluster_files
    from .loading import is_local

    plan = prepared.request.plan
    shape = cluster_files.ClusterShape(
        run_dir=str(output_dir.resolve()), data=str(Path(prepared.request.data).resolve()),
        num_nodes=plan.profile.num_nodes, gpus_per_node=plan.profile.num_gpus, gpu=plan.profile.gpu,
        cuda=resolve_gpu(plan.profile.gpu).cuda, offline=is_local(prepared.source),
        job_name=f"advisor-{plan.training.method}",
    )
    config.to_yaml_file(str(output_dir / CONFIG_FILE))
    for name, text in ((LAUNCH_FILE, cluster_files.launch_script(shape)), (SCRIPT_FILE, training_script(prepared)),
                       (SBATCH_FILE, cluster_files.sbatch_script(shape)), (SKY_FILE, cluster_files.sky_task(shape))):
        (output_dir / name).write_text(text, encoding="utf-8")
    (output_dir / LAUNCH_FILE).chmod(0o755)
    artifacts.write_json(output_dir / artifacts.PLAN_FILE, prepared.request.plan)
    described.node_commands = cluster_files.node_commands(shape)
    described.command = described.node_commands[0]
    described.sbatch, described.sky = SBATCH_FILE, SKY_FILE
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
        _tokenize_once(prepared)
        return _launch(output_dir, request, None)
    config, described = cluster_config(prepared)  # refusals (a 4-bit base sharded) before anything is written
    if prepared.encoded is None:
        described.notes.append(
            f"the tokenizer of '{prepared.source}' is not here (offline, not in the local cache): the files are "
            f"written without it; the token lengths, rows left without loss and decoded preview are checked on "
            f"the cluster by `python {SCRIPT_FILE} --prepare-only`, which the launch runs before the first step"
            + (f"; the FSDP wrap class ({described.wrap_class}) is read from the architecture, not the weights"
               if described.wrap_class else ""))
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
            print(dry_run_text(output_dir, files))
        return 0
    _tokenize_once(prepared)
    return _launch(output_dir, request, backup)


def _tokenize_once(prepared: Prepared) -> None:
    """The encoding this process already made, saved for every launched process to read (--prepare-only's work)."""
    from .pretokenize import prepare_once

    folder = Path(prepared.request.output_dir) / TOKENIZED_DIR
    print(prepare_once(prepared.request, folder, prepared), file=sys.stderr)


def dry_run_text(output_dir: Path, files: LaunchFiles) -> str:
    """What was written and the exact command for each machine (or for the cluster's scheduler)."""
    lines = [f"wrote {output_dir / CONFIG_FILE} ({launch_words(files)}), {LAUNCH_FILE}, {SCRIPT_FILE}, "
             f"{SBATCH_FILE} and {SKY_FILE}"]
    if len(files.node_commands) > 1:
        lines.append(f"run it on each of the {files.num_machines} machines, with MAIN_PROCESS_IP set to the "
                     "address of machine 0 there:")
        lines += [f"  machine {rank}: {command}" for rank, command in enumerate(files.node_commands)]
    else:
        lines.append(f"run it with: {files.command}")
    lines.append(f"or with Slurm: sbatch {output_dir / SBATCH_FILE} (fill in its partition); "
                 f"with SkyPilot: sky launch {output_dir / SKY_FILE}")
    return "\n".join(lines)


def check_data(prepared: Prepared, as_json: bool = False) -> int:
    """The preflight's data checks (token lengths, rows left without loss, the decoded preview; no probe step):
    0, or EXIT_NO with the report on stderr. Before launch files are written, and in `train.py --prepare-only`."""
    from rich.console import Console

    from ..documents import print_json
    from .preflight import render_preflight, run_preflight

    with contextlib.redirect_stdout(sys.stderr):
        report = run_preflight(prepared, probe=False)
    if report.ok:
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 0
    render_preflight(report, Console(file=sys.stderr, highlight=False, soft_wrap=True))
    if as_json:
        print_json({"ok": False, "preflight": report.model_dump(mode="json")})
    return EXIT_NO


DISTRIBUTED_WORDS = {"NO": "no distribution", "MULTI_GPU": "data parallel", "MULTI_CPU": "data parallel on CPUs",
                     "FSDP": "FSDP sharding", "DEEPSPEED": "DeepSpeed ZeRO"}


def launch_words(files: LaunchFiles) -> str:
    """The launch config in words: "data parallel, 4 processes, bf16 mixed precision, wraps LlamaDecoderLayer";
    the machines, an offload and the fused loss where they apply."""
    processes = f"{files.num_processes} process" + ("" if files.num_processes == 1 else "es")
    if files.num_machines > 1:
        processes = f"{files.num_machines} machines x {files.num_processes // files.num_machines} processes"
    precision = "full precision" if files.mixed_precision == "no" else f"{files.mixed_precision} mixed precision"
    distribution = "FSDP hybrid sharding" if files.hybrid else DISTRIBUTED_WORDS.get(files.distributed_type,
                                                                                     files.distributed_type)
    words = [distribution, processes, precision]
    if files.wrap_class:
        words.append(f"wraps {files.wrap_class}")
    if files.offload in OFFLOAD_NAMES:
        words.append(OFFLOAD_NAMES[files.offload])
    if files.fused_loss:
        words.append("fused cross-entropy")
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
    prepare_only: bool = False,
) -> int:
    """train.py's body in each launched process: the local backend; one line for a user mistake.

    Each process reads the data tokenised once in TOKENIZED_DIR when it is there; `prepare_only` (one process,
    before the launch) writes it and returns.
    """
    from ..documents import load_plan
    from ..errors import EXIT_INTERRUPTED, EXIT_NO
    from . import local, pretokenize
    from .models import ExecuteRequest
    from .prepared import prepare

    tokenized = output_dir / TOKENIZED_DIR
    try:
        request = ExecuteRequest(
            plan=load_plan(str(plan_path)), plan_path=str(plan_path), data=data, output_dir=str(output_dir),
            resume=resume, max_steps=max_steps, save_steps=save_steps, backend="accelerate",
        )
        if prepare_only:  # the data checks a dry run without the tokenizer left for the cluster, then the encoding
            current = tokenized.is_dir() and pretokenize.staleness(tokenized, request) is None
            prepared = prepare(request, tokenized if current else None)
            refused = check_data(prepared)
            if refused:
                return refused
            print(pretokenize.prepare_once(request, tokenized, prepared), file=sys.stderr)
            return 0
        prepared = prepare(request, tokenized)
        if local.is_main_process():
            artifacts.prepare_output_dir(output_dir, resume, overwrite=False,
                                         launch_files=LAUNCH_FILES + pretokenize.owned_files(output_dir, TOKENIZED_DIR))
        local.run(prepared)
        _leave_process_group()
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


def _leave_process_group() -> None:
    """After a completed run, every process meets once more and closes the process group itself. Left to the
    interpreter's exit, gloo's threads aborted one process of the 2-machine test after it had saved everything
    ("terminate called without an active exception", exit -6: CI, flaky)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _peer_exited(error: RuntimeError) -> bool:
    """A collective failed because another process closed its connection (gloo's words, torch 2.13).

    Over gloo the socket closes before torchrun stops this process (measured:
    RuntimeError "Connection closed by peer"); under NCCL a collective is
    expected to wait until torchrun's SIGTERM instead (not measured: no GPU).
    """
    return "closed by peer" in str(error) or "reset by peer" in str(error)
