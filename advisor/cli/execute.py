"""`advisor execute PLAN --data DATA --output-dir DIR`: run a plan (CONTRACT.md).

Order, so that every refusal comes before anything is written: read the plan
(strict keys), validate the data (exit 1 listing bad records), resolve the run
against this machine (a CUDA-only method without CUDA, a hub model offline:
one line, exit 2), run the preflight (backends/preflight.py: rows left
without loss, a probe step on the longest batch; exit 1 when it refuses),
then claim the output directory (--overwrite replaces only a previous run its
run-manifest.json proves advisor's; the previous run is moved aside, deleted
when the new run completes and put back when it fails) and train, starting
from the shape the probe found to fit. `--dry-run` stops after the preflight
and prints the run and the report (the accelerate backend writes its config,
launch command and script instead), changing nothing that exists. Ctrl-C or
SIGTERM saves a checkpoint and prints the resume command (exit 130). Heavy
libraries load only past the argument checks.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_NO, UserError
from ..extras import require
from ..models import MAX_RUN_STEPS, Plan
from .numbers import whole
from ..documents import load_plan, print_json

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "execute", help="train the plan's recommendation on your data",
        description="Run a plan from `advisor plan --json`: train, checkpoint, evaluate, save the model and metrics.",
    )
    parser.add_argument("plan", metavar="PLAN", help="plan file (JSON from `advisor plan --json`, or TOML/YAML)")
    parser.add_argument("--data", required=True, help="training data: JSONL, JSON, CSV or Parquet file, or a directory")
    parser.add_argument("--output-dir", required=True, help="where the model, metrics and checkpoints go")
    parser.add_argument("--resume", action="store_true", help="continue the run in --output-dir from its last checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous run in --output-dir")
    parser.add_argument("--max-steps", type=whole(1, MAX_RUN_STEPS), metavar="N", help="stop each model after N optimizer steps")
    parser.add_argument("--save-steps", type=whole(1, MAX_RUN_STEPS), metavar="N", help="checkpoint (and evaluate) every N steps")
    parser.add_argument("--backend", choices=("local", "accelerate"), default="local",
                        help="local: this process; accelerate: `accelerate launch` with a generated config")
    parser.add_argument("--dry-run", action="store_true", help="resolve and print the run (accelerate: write its files); train nothing")
    parser.add_argument("--no-probe", action="store_true",
                        help="skip the preflight's one-step probe of the longest micro-batch (on a CPU it can take minutes)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=run)


def run(args) -> int:
    require("train", "advisor execute")
    with _sigterm_as_interrupt():
        return _execute(args)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM stops the command as Ctrl-C does (KeyboardInterrupt: exit 130, a moved-aside run put back);
    while training, SaveOnInterrupt turns either into a checkpoint first."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(args) -> int:
    from ..backends.models import ExecuteRequest

    plan = load_plan(args.plan)
    request = ExecuteRequest(
        plan=plan, plan_path=args.plan, data=args.data, output_dir=args.output_dir, resume=args.resume,
        overwrite=args.overwrite, max_steps=args.max_steps, save_steps=args.save_steps, backend=args.backend,
        dry_run=args.dry_run, probe=not args.no_probe,
    )
    if args.resume and args.overwrite:
        raise UserError("--resume continues a run and --overwrite replaces it: pass one of them")
    _check_output_dir(request)
    if not (args.backend == "accelerate" and args.dry_run):  # launch files for a cluster: its GPUs run the method
        _check_method_runs_here(plan)
    if not data_is_valid(args.data, args.json):
        return EXIT_NO
    # Libraries print load reports and warnings; stdout stays for our answer (one JSON document with --json).
    with contextlib.redirect_stdout(sys.stderr):
        from ..backends.prepared import prepare

        prepared = prepare(request)
    if args.backend == "accelerate":
        return _accelerate(prepared, args)
    if args.dry_run:
        return _print_resolved(prepared, args.json)
    return _train(prepared, args.json)


def _check_output_dir(request) -> None:
    """The cheap refusal first: an output directory this run may not use (nothing is changed yet)."""
    from ..backends.artifacts import check_output_dir

    launch_files = ()
    if request.backend == "accelerate":
        from ..backends.accelerate import LAUNCH_FILES

        launch_files = LAUNCH_FILES
    check_output_dir(Path(request.output_dir), request.resume, request.overwrite, launch_files)


def _check_method_runs_here(plan: Plan) -> None:
    """A CUDA-only method or optimizer on a machine without it is refused before the data is read."""
    if plan.training is None:
        return
    optimizer = plan.training.hyperparameters.optimizer
    if optimizer in ("adamw_8bit", "paged_adamw_8bit"):  # bitsandbytes kernels; without it the Trainer fails mid-setup
        require("cuda", f"the optimizer '{optimizer}' (plan.json training.hyperparameters.optimizer; 'adamw' needs "
                        "nothing extra)")
    from ..backends.hardware import check_method_runs_here, detect_device
    from ..manager import get_method

    check_method_runs_here(get_method(plan.training.method), detect_device())


def data_is_valid(path: str, as_json: bool) -> bool:
    """The data toolkit's validation; bad records are listed (up to its cap) and stop the run."""
    from ..data import validate_file

    report = validate_file(path)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.ok:
        return True
    if as_json:
        print_json({"ok": False, "validation": report.model_dump(mode="json")})
    for error in report.errors:
        print(f"error: line {error.line}: {error.message}", file=sys.stderr)
    print(f"error: '{path}' has {report.error_count} invalid record(s); fix them (see `advisor validate`) "
          "before training", file=sys.stderr)
    return False


def _print_resolved(prepared, as_json: bool) -> int:
    """--dry-run: the resolved run and the preflight (with its probe); exit 1 when the preflight refuses."""
    from ..backends.describe import resolved_run
    from ..backends.preflight import run_preflight

    resolved = resolved_run(prepared)
    with contextlib.redirect_stdout(sys.stderr):
        report = run_preflight(prepared, probe=prepared.request.probe)
    if as_json:
        print_json({"run": resolved.model_dump(mode="json"), "preflight": report.model_dump(mode="json")})
    else:
        print(resolved.text())
        _render(report, sys.stdout)
    return 0 if report.ok else EXIT_NO


def _render(report, stream) -> None:
    from rich.console import Console

    from ..backends.preflight import render_preflight

    render_preflight(report, Console(file=stream, highlight=False, soft_wrap=True))


def _train(prepared, as_json: bool) -> int:
    from ..backends import artifacts, local
    from ..backends.preflight import run_preflight

    request = prepared.request
    # The preflight before anything is written; a resumed run keeps the shape it had, so it is not probed again.
    with contextlib.redirect_stdout(sys.stderr):
        report = run_preflight(prepared, probe=request.probe and not request.resume)
    if not report.ok:
        _render(report, sys.stderr)
        if as_json:
            print_json({"ok": False, "preflight": report.model_dump(mode="json")})
        return EXIT_NO
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    from ..backends.describe import resolved_run

    print(resolved_run(prepared).text(), file=sys.stderr)  # what is about to train, as --dry-run shows it
    output_dir = Path(request.output_dir)
    backup = artifacts.prepare_output_dir(output_dir, request.resume, request.overwrite)
    if backup is not None:
        print(f"the previous run in '{output_dir}' moved to '{backup}' (deleted when this run completes, "
              "put back if it fails)", file=sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            metrics = local.run(prepared, backup, start_downshifts=report.probe.downshifts)
    except local.RunInterrupted as stop:
        if backup is not None and not artifacts.has_checkpoint(output_dir):
            print("interrupted before the first checkpoint: nothing to resume", file=sys.stderr)
            print(artifacts.settle_backup(output_dir, backup, interrupted=True), file=sys.stderr)
            return EXIT_INTERRUPTED
        where = f" at {stop.checkpoint}" if stop.checkpoint else ""
        print(f"interrupted: checkpoint saved{where}", file=sys.stderr)
        print(f"resume with: {stop.command}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseException as error:
        if backup is not None:
            interrupted = isinstance(error, KeyboardInterrupt)
            print(artifacts.settle_backup(output_dir, backup, interrupted), file=sys.stderr)
        raise
    if as_json:
        print_json(metrics)
    else:
        print(summary(metrics, output_dir))
    return 0


def summary(metrics, output_dir: Path) -> str:
    """A few lines a person reads after a run: where it is and how well it did."""
    lines = [f"trained {metrics.model} with {metrics.method} on {metrics.device} ({metrics.precision}) "
             f"in {metrics.wall_time_s:.0f} s -> {output_dir}"]
    for name, value in metrics.kfold_summary.items():
        lines.append(f"  {len(value.values)}-fold validation {name}: {value.mean:.4f} ± {value.std:.4f}")
    if metrics.main is not None:
        for name, value in metrics.main.final_eval.items():
            lines.append(f"  validation {name}: {value:.4f}")
        if metrics.main.early_stopped:
            lines.append(f"  stopped early at step {metrics.main.steps}; kept step {metrics.main.best_step}")
    for name, value in metrics.test.items():
        lines.append(f"  test {name}: {value:.4f}")
    if metrics.rows_left_out:
        listed = ", ".join(str(line) for line in metrics.left_out_lines)
        more = ", ..." if metrics.rows_left_out > len(metrics.left_out_lines) else ""
        lines.append(f"  left out {metrics.rows_left_out} record(s) whose prompt fills seq_len (line {listed}{more}): "
                     "plan.json training.data.long_prompts \"drop\"")
    for shift in metrics.downshifts:
        lines.append(f"  out of memory at step {shift.at_step} ({shift.run}): continued with micro-batch "
                     f"{shift.after.batch_size} x {shift.after.gradient_accumulation_steps}, "
                     f"gradient checkpointing {'on' if shift.after.gradient_checkpointing else 'off'}")
    return "\n".join(lines)


def _accelerate(prepared, args) -> int:
    """The data checks of the preflight run here; its probe does not (it would hold a CUDA context in the
    parent while the launched processes train), so the first step is the launched run's own. Launch files
    written without the model's tokenizer leave the checks to `train.py --prepare-only` on the cluster."""
    from ..backends import accelerate

    if prepared.encoded is not None and (refused := accelerate.check_data(prepared, args.json)):
        return refused
    return accelerate.execute(prepared, as_json=args.json)
