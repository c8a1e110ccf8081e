"""What a run leaves in its output directory, besides the model: and the directory's own safety.

`local.py` calls these. Layout of DIR:

    config.json, model.safetensors | adapter_config.json, adapter_model.safetensors
    tokenizer files                 the saved model (or adapter) and its tokenizer
    README.md                       the model card: what it is, how to load it (and merge an adapter)
    metrics.json                    RunMetrics: losses per step, evaluations, folds, test, downshifts
    loss.png                        training loss per step and validation loss per evaluation
    plan.json                       the plan that was executed
    run-manifest.json               data sha256, plan hash, split seed, package versions (resume checks);
                                    every file the run wrote, with its sha256 (what --overwrite may replace)
    progress.jsonl                  one line per logged step: step, max_steps, loss, eta_s (the wizard reads it)
    data/manifest.json              the split (the data toolkit's write_split), with the split files
    checkpoints/                    Trainer checkpoints of the saved model; folds/fold-N/ for k-fold
                                    (each renamed into place when complete: checkpoints.py)

The directory is the run's only as far as run-manifest.json proves it:
`--overwrite` moves a previous run aside only when every file in it is listed
there with the sha256 it was written with (or lies in its checkpoint folders),
and names the files that are not (advisor/ownership.py). The moved-aside run
is deleted when the new run completes, and put back when the new one fails or
stops before it has a checkpoint to resume from (`settle_backup`).

Nothing here reaches the network: the model card is plain text, not
huggingface_hub's ModelCard (which can fetch templates), and the plot uses
matplotlib's Agg canvas through `Figure` (no GUI, no pyplot state).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Optional

from pydantic import BaseModel

from ..errors import UserError
from ..ownership import files_under, foreign_files, refuse_foreign, sha256_of
from .checkpoints import newest_complete
from .manifest import MANIFEST_FILE, load_manifest, read_manifest
from .models import RunManifest, RunMetrics, TrainResult

METRICS_FILE = "metrics.json"
PLAN_FILE = "plan.json"
LOSS_PLOT = "loss.png"
MODEL_CARD = "README.md"


def write_json(path: Path, document: Any) -> None:
    """Write through a temporary file and rename, so an interrupted write never leaves half a file."""
    text = document.model_dump_json(indent=2) if isinstance(document, BaseModel) else json.dumps(document, indent=2)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_metrics(output_dir: Path) -> Optional[RunMetrics]:
    path = output_dir / METRICS_FILE
    if not path.is_file():
        return None
    return RunMetrics.model_validate_json(path.read_text(encoding="utf-8"))


def record(output_dir: Path, paths: Iterable[Path]) -> None:
    """Add files the run just wrote to its manifest with their sha256 (main process only)."""
    manifest = read_manifest(output_dir)
    for path in paths:
        manifest.files[path.relative_to(output_dir).as_posix()] = sha256_of(path)
    write_json(output_dir / MANIFEST_FILE, manifest)


def written_since(output_dir: Path, started_ns: int) -> list[Path]:
    """Files directly in `output_dir` modified since `started_ns` (what a `save_model` just wrote)."""
    return sorted(path for path in output_dir.iterdir()
                  if path.is_file() and not path.is_symlink() and path.stat().st_mtime_ns >= started_ns)


#: What a run killed while writing its first manifest leaves.
_FIRST_MANIFEST = f".{MANIFEST_FILE}.tmp"


def foreign_in(output_dir: Path, manifest: Optional[RunManifest]) -> list[str]:
    """The files in `output_dir` its manifest does not prove the run's (all of them without a manifest)."""
    if manifest is None:
        return [name for name in files_under(output_dir) if name != _FIRST_MANIFEST]
    return foreign_files(output_dir, manifest.files, manifest.directories, [MANIFEST_FILE, *manifest.appending])


def check_output_dir(
    output_dir: Path, resume: bool, overwrite: bool, launch_files: tuple[str, ...] = (),
) -> bool:
    """Refuse a directory this run may not use, changing nothing; True when it holds a previous run.

    A directory holding anything is refused unless --resume (continue its run)
    or --overwrite (replace a previous advisor run, proved by its manifest;
    any other file refuses, named). Launch files an earlier `--backend
    accelerate` wrote there (`launch_files`, proved the same way) do not make
    the directory occupied: they are written again.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir '{output_dir}' is a file; name a directory")
    if resume:
        if not output_dir.is_dir() or not any(output_dir.iterdir()):
            raise UserError(f"cannot resume: '{output_dir}' holds no run; run without --resume to start one")
        read_manifest(output_dir)
        return True
    present = files_under(output_dir) if output_dir.is_dir() else []
    if not present:
        return False
    foreign = foreign_in(output_dir, load_manifest(output_dir))
    if not foreign and set(present) <= {MANIFEST_FILE, _FIRST_MANIFEST, *launch_files}:
        return False  # launch files to write again, or a run stopped before it wrote anything else
    if not overwrite:
        raise UserError(
            f"--output-dir '{output_dir}' is not empty; pass --resume to continue its run, "
            "--overwrite to replace it, or choose another directory"
        )
    if foreign:
        refuse_foreign("--overwrite", output_dir, foreign, "move them out or choose another --output-dir")
    return True


def prepare_output_dir(
    output_dir: Path, resume: bool, overwrite: bool, launch_files: tuple[str, ...] = (),
) -> Optional[Path]:
    """Check, then make the directory ready; returns where --overwrite moved the previous run.

    The previous run is moved aside, not deleted: `drop_backup` deletes it once
    the new run completes, `settle_backup` puts it back when the new one fails.
    """
    occupied = check_output_dir(output_dir, resume, overwrite, launch_files)
    if resume:
        return None
    backup = None
    if occupied:
        backup = output_dir.with_name(f"{output_dir.name}.replaced-{datetime.now():%Y%m%d-%H%M%S-%f}")
        output_dir.rename(backup)
    output_dir.mkdir(parents=True, exist_ok=True)
    return backup


def drop_backup(backup: Optional[str]) -> None:
    """After a successful --overwrite run, the previous directory it replaced goes."""
    if backup and Path(backup).is_dir():
        shutil.rmtree(backup)


def has_checkpoint(output_dir: Path) -> bool:
    """Whether the run left a complete checkpoint to resume from."""
    folders = [output_dir / "checkpoints", *sorted((output_dir / "folds").glob("fold-*"))]
    return any(newest_complete(folder)[0] is not None for folder in folders)


def settle_backup(output_dir: Path, backup: Path, interrupted: bool) -> str:
    """After a run that replaced `backup` did not complete: put the previous run back, unless the new one left a
    checkpoint to resume from (interrupted) or files it cannot prove its own. Returns what happened, one line."""
    if interrupted and has_checkpoint(output_dir):
        return f"the previous run stays in '{backup}' until this one completes (--resume)"
    if output_dir.is_dir():
        if foreign_in(output_dir, load_manifest(output_dir)):
            return f"the previous run stays in '{backup}': '{output_dir}' now holds files advisor did not write"
        shutil.rmtree(output_dir)
    backup.rename(output_dir)
    return f"the previous run is back in '{output_dir}'"


#: What TRL's preference trainers log as the chosen answer's reward lead over the rejected one.
PREFERENCE_MARGIN = "rewards/margins"


def plot_losses(metrics: RunMetrics, path: Path) -> None:
    """loss.png: training loss per step, validation loss per evaluation; k-fold folds drawn faint."""
    loss_figure(metrics).savefig(path)


def loss_figure(metrics: RunMetrics) -> Any:
    """The matplotlib Figure of loss.png; every curve is in the legend (each fold, the final model)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), dpi=110)
    axes = figure.add_subplot()
    for fold in metrics.folds:
        axes.plot([p.step for p in fold.losses], [p.loss for p in fold.losses], alpha=0.35, linewidth=0.8,
                  label=f"{fold.run}: train loss")
    if metrics.main is not None:
        _plot_result(axes, metrics.main)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.set_title(f"{metrics.model} · {metrics.method} · {metrics.status}")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _plot_result(axes: Any, result: TrainResult) -> None:
    name = "final model (all data)" if result.run == "final" else "model"
    axes.plot([p.step for p in result.losses], [p.loss for p in result.losses], label=f"{name}: train loss")
    evaluated = [e for e in result.evaluations if "loss" in e.metrics]
    if evaluated:
        axes.plot([e.step for e in evaluated], [e.metrics["loss"] for e in evaluated], "o-",
                  label=f"{name}: validation loss")
    if result.best_step is not None:
        axes.axvline(result.best_step, color="grey", linestyle=":", label=f"kept: step {result.best_step}")
    margins = [e for e in result.evaluations if PREFERENCE_MARGIN in e.metrics]
    if margins:  # preference training: how far the chosen answer's reward leads, on its own scale
        twin = axes.twinx()
        twin.plot([e.step for e in margins], [e.metrics[PREFERENCE_MARGIN] for e in margins], "s--", color="tab:green",
                  label=f"{name}: validation reward margin")
        twin.set_ylabel("reward margin (chosen - rejected)")
        twin.legend(fontsize="small", loc="upper left")


def model_card(
    metrics: RunMetrics, output_dir: Path, base_source: str, base_id: str, adapter: bool, prompt_format: str,
    plain_checkpoint: bool = True,
) -> str:
    """README.md for the output directory: what was trained, on what, how well, and how to load it."""
    kind = "classification" if metrics.task == "classification" else "causal_lm"
    pipeline = "text-classification" if kind == "classification" else "text-generation"
    library = "peft" if adapter else "transformers"
    lines = [
        "---",
        f"library_name: {library}",
        f"pipeline_tag: {pipeline}",
        f"base_model: {base_id}",
        "tags: [advisor, " + metrics.method + "]",
        "---",
        "",
        f"# {base_id} fine-tuned with `{metrics.method}`",
        "",
        f"Trained by `advisor execute` ({metrics.status}) on {metrics.device} in {metrics.precision}; "
        f"{metrics.wall_time_s:.0f} s wall time. The plan it followed is in `plan.json`, the split in "
        "`data/manifest.json`, every loss and evaluation in `metrics.json`, the curve in `loss.png`.",
        "",
        "## Results",
        "",
        *_results_lines(metrics),
        "",
        "## How to load it",
        "",
        "```python",
        *_loading_lines(kind, adapter, base_source, output_dir.resolve(), plain_checkpoint),
        "```",
    ]
    if adapter:
        lines += [
            "",
            "To serve it without the adapter's extra latency, merge it into the base weights:",
            "",
            "```python",
            "merged = model.merge_and_unload()",
            'merged.save_pretrained("merged-model")',
            'tokenizer.save_pretrained("merged-model")',
            "```",
        ]
    if prompt_format:
        lines += ["", "## Prompt format", "", prompt_format]
    if metrics.label_names:
        lines += ["", f"## Labels ({len(metrics.label_names)})", "", ", ".join(f"`{n}`" for n in metrics.label_names)]
    return "\n".join(lines) + "\n"


def _results_lines(metrics: RunMetrics) -> list[str]:
    lines = []
    if metrics.kfold_summary:
        for name, summary in metrics.kfold_summary.items():
            lines.append(f"- {len(summary.values)}-fold validation {name}: {summary.mean:.4f} ± {summary.std:.4f}")
    if metrics.main is not None and metrics.main.final_eval:
        where = f"step {metrics.main.best_step}" if metrics.main.best_step is not None else "the last step"
        for name, value in metrics.main.final_eval.items():
            lines.append(f"- validation {name} (kept checkpoint, {where}): {value:.4f}")
    for name, value in metrics.test.items():
        lines.append(f"- held-out test {name}: {value:.4f}")
    if metrics.downshifts:
        lines.append(f"- out-of-memory downshifts: {len(metrics.downshifts)} (see metrics.json)")
    return lines or ["- no evaluation split: see the training loss in metrics.json"]


def _loading_lines(kind: str, adapter: bool, base_source: str, path: Path, plain_checkpoint: bool) -> list[str]:
    auto = "AutoModelForSequenceClassification" if kind == "classification" else "AutoModelForCausalLM"
    if not plain_checkpoint:
        # Modules no transformers class has: the plugin rebuilds the base, then the weights load strictly.
        lines = ["from advisor.backends.reload import load_trained", "",
                 f'model, tokenizer = load_trained("{path}")']
    elif not adapter:
        lines = [f"from transformers import AutoTokenizer, {auto}", "", f'path = "{path}"',
                 "tokenizer = AutoTokenizer.from_pretrained(path)", f"model = {auto}.from_pretrained(path)"]
    else:
        lines = [
            "from peft import PeftModel",
            f"from transformers import AutoConfig, AutoTokenizer, {auto}",
            "",
            f'path = "{path}"',
            f'base = {auto}.from_pretrained("{base_source}", config=AutoConfig.from_pretrained(path))',
            "model = PeftModel.from_pretrained(base, path)",
            "tokenizer = AutoTokenizer.from_pretrained(path)",
        ]
    if kind == "classification":
        lines += ["", 'inputs = tokenizer(["some text"], return_tensors="pt")',
                  "label = model.config.id2label[model(**inputs).logits.argmax(-1).item()]"]
    return lines
