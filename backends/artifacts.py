"""What a run leaves in its output directory, besides the model: and the directory's own safety.

`local.py` calls these. Layout of DIR:

    config.json, model.safetensors | adapter_config.json, adapter_model.safetensors
    tokenizer files                 the saved model (or adapter) and its tokenizer
    README.md                       the model card: what it is, how to load it (and merge an adapter)
    metrics.json                    RunMetrics: losses per step, evaluations, folds, test, downshifts
    loss.png                        training loss per step and validation loss per evaluation
    plan.json                       the plan that was executed
    run-manifest.json               data sha256, plan hash, split seed, package versions (resume checks)
    progress.jsonl                  one line per logged step: step, max_steps, loss, eta_s (the wizard reads it)
    data/manifest.json              the split (the data toolkit's write_split), with the split files
    checkpoints/                    Trainer checkpoints of the saved model; folds/fold-N/ for k-fold

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
from typing import Any, Optional

from pydantic import BaseModel

from ..errors import UserError
from .manifest import MANIFEST_FILE
from .models import RunMetrics, TrainResult

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


def check_output_dir(output_dir: Path, resume: bool, overwrite: bool, ignore: tuple[str, ...] = ()) -> bool:
    """Refuse a directory this run may not use, changing nothing; True when it holds something.

    A non-empty directory is refused unless --resume (continue its run) or
    --overwrite (replace a previous advisor run; a directory advisor did not
    write is never replaced). Files named in `ignore` (the accelerate
    backend's launch files) do not make a directory occupied.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir '{output_dir}' is a file; name a directory")
    occupied = output_dir.is_dir() and any(entry.name not in ignore for entry in output_dir.iterdir())
    if resume:
        if not occupied:
            raise UserError(f"cannot resume: '{output_dir}' holds no run; run without --resume to start one")
        return True
    if occupied and not overwrite:
        raise UserError(
            f"--output-dir '{output_dir}' is not empty; pass --resume to continue its run, "
            "--overwrite to replace it, or choose another directory"
        )
    if occupied and not (output_dir / MANIFEST_FILE).is_file():
        raise UserError(
            f"--output-dir '{output_dir}' is not empty and holds no previous advisor run "
            f"(no {MANIFEST_FILE}), so --overwrite will not replace it; choose another directory"
        )
    return occupied


def prepare_output_dir(
    output_dir: Path, resume: bool, overwrite: bool, ignore: tuple[str, ...] = ()
) -> Optional[Path]:
    """Check, then make the directory ready; returns where --overwrite moved the previous run.

    The previous run is moved aside, not deleted: `drop_backup` deletes it
    once the new run completes, so a failed run loses nothing.
    """
    occupied = check_output_dir(output_dir, resume, overwrite, ignore)
    if resume:
        return None
    backup = None
    if occupied:
        backup = output_dir.with_name(f"{output_dir.name}.replaced-{datetime.now():%Y%m%d-%H%M%S}")
        output_dir.rename(backup)
    output_dir.mkdir(parents=True, exist_ok=True)
    return backup


def drop_backup(backup: Optional[str]) -> None:
    """After a successful --overwrite run, the previous directory it replaced goes."""
    if backup and Path(backup).is_dir():
        shutil.rmtree(backup)


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
