"""Human output of a plan: summary, rationale with sources, estimate, alternatives, warnings (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ..errors import UserError
from ..estimate.sharding import ENGINE_NAMES, OFFLOAD_NAMES, hardware_label
from ..knowledge_base import resolve_gpu
from ..models import Plan, PlanStage, TimeEstimate
from ..quantities import about_hours, hours_span


def time_with_band(time: TimeEstimate) -> str:
    """"~2.08 h (1.94-3.38 h p10-p90), cost 12.40 (11.59-20.14)": the estimate and its measured spread (under k-fold
    "5 folds + final model: ~2.08 h in all (...)")."""
    text = time.hours_text()
    if time.hours_band:
        text += f" ({hours_span(*time.hours_band)} p10-p90)"
    if time.cost is not None:
        text += f", cost {time.cost:,.2f}"
        if time.cost_band:
            text += f" ({time.cost_band[0]:,.2f}-{time.cost_band[1]:,.2f})"
    return text


def render_plan(plan: Plan, console: Console | None = None) -> None:
    console = console or Console()
    rec = plan.recommendation
    title = rec.approach.replace("_", " ") + (f" · {rec.method}" if rec.method else "")
    if rec.complements:
        title += " + " + " + ".join(rec.complements)
    console.print(Panel(rec.summary, title=f"[b]{title}[/b]", title_align="left"))

    why = Table("rule", "why", "source", title="Why", title_justify="left", show_lines=False, expand=True)
    for entry in plan.rationale:
        why.add_row(entry.rule, entry.message, entry.source)
    console.print(why)

    if plan.estimate:
        memory = plan.estimate.memory
        fits = plan.estimate.fits
        verdict = "[green]fits[/green]" if fits else "[red]does not fit[/red]" if fits is False else "no device given"
        slack = "CUDA context and allocator slack" if on_cuda(plan) else "allocator slack"
        console.print(f"Memory per device: {memory.peak_gib:.2f} GiB peak (+{memory.overhead_gib:.2f} GiB {slack}) "
                      f"of {plan.estimate.device_memory_gib or 0:.1f} GiB: {verdict}")
        layout = devices_layout(plan.estimate.config)
        if layout:
            console.print(f"Devices: {layout}")
        table = Table("part", "GiB")
        for part, gib in memory.breakdown.items():
            table.add_row(part, f"{gib:.2f}")
        console.print(table)
        if plan.estimate.storage:
            storage = plan.estimate.storage
            console.print(f"Storage: {storage.per_task_mb:,.1f} MB per task, {storage.total_mb:,.1f} MB in all")
        if plan.estimate.time:
            time = plan.estimate.time
            # With stages, the plan's own estimate is its last stage's (the task tuning it recommends).
            label = f"Time of stage {len(plan.stages)}, {plan.stages[-1].name}" if plan.stages else "Time"
            console.print(f"{label}: {time_with_band(time)} at ~{time.tokens_per_s:,.0f} tokens/s")

    if plan.training:
        hp = plan.training.hyperparameters
        groups = ", ".join(f"{g.name} {g.learning_rate:g}" for g in hp.param_groups)
        console.print(
            f"Training: {plan.training.method}, {plan.training.precision}, lr {groups}, {hp.epochs:g} epochs, "
            f"batch {hp.batch_size} x {hp.gradient_accumulation_steps} accumulation, seq {hp.seq_len}, "
            f"{hp.scheduler} with {hp.warmup_ratio:.0%} warmup"
            + (", gradient checkpointing" if hp.gradient_checkpointing else "")
            + (f", method {hp.method}" if hp.method else "")
        )
        data = plan.training.data
        split = f"{data.kfold}-fold" if data.kfold else f"{1 - data.validation_ratio:.0%}/{data.validation_ratio:.0%}"
        console.print(f"Data: {split} split" + (", stratified" if data.stratify else "") + f", seed {data.seed}"
                      + (", records whose prompt fills seq_len left out" if data.long_prompts == "drop" else ""))

    for number, stage in enumerate(plan.stages, 1):
        console.print(stage_line(number, stage))
        if stage.rationale:
            why = Table("rule", "why", "source", title=f"Why, stage {number}", title_justify="left", expand=True)
            for entry in stage.rationale:
                why.add_row(entry.rule, entry.message, entry.source)
            console.print(why)
        for warning in (warning for warning in stage.warnings if warning not in plan.warnings):
            console.print(f"[yellow]warning:[/yellow] stage {number}, {stage.name}: {warning}")
    if plan.stages:
        console.print(stages_total(plan.stages))

    if plan.alternatives:
        table = Table("method", "approach", "fits", "peak GiB", "why not", title="Alternatives", title_justify="left")
        for alt in plan.alternatives:
            fits = "yes" if alt.fits else "no" if alt.fits is False else "-"
            peak = f"{alt.peak_gib:.1f}" if alt.peak_gib is not None else "-"
            table.add_row(alt.method or alt.approach, alt.approach, fits, peak, alt.why_not)
        console.print(table)

    for assumption in plan.assumptions:
        console.print(f"[cyan]assumed:[/cyan] {assumption}")
    for warning in plan.warnings:
        if warning not in plan.assumptions:
            console.print(f"[yellow]warning:[/yellow] {warning}")


def stage_line(number: int, stage: PlanStage) -> str:
    """One stage of a multi-stage plan in a line: what it trains, with which method and settings, its cost."""
    line = f"Stage {number}, {stage.name}: {stage.purpose}; {stage.method or 'does not fit'}"
    if stage.training:
        hp = stage.training.hyperparameters
        line += f", lr {hp.learning_rate:g}, {hp.epochs:g} epochs, seq {hp.seq_len}"
    if stage.estimate:
        line += f", peak {stage.estimate.memory.peak_gib:.1f} GiB"
        time = stage.estimate.time
        if time:
            line += f", {time.train_tokens:,} tokens in {time.hours_text(digits=1)}"
            if time.cost is not None:
                line += f", cost {time.cost:,.2f}"
    return line


def stages_total(stages: list[PlanStage]) -> str:
    """'All 2 stages: ~135.3 h (stage 1 ~134.8 h + stage 2 ~0.5 h), cost 1,234.00': what the stages take together."""
    times = [stage.estimate.time if stage.estimate else None for stage in stages]
    if any(time is None for time in times):
        return "All stages: no time estimate for " + ", ".join(
            f"stage {number}" for number, time in enumerate(times, 1) if time is None)
    parts = " + ".join(f"stage {number} {about_hours(time.hours)}" for number, time in enumerate(times, 1))
    text = f"All {len(stages)} stages: {about_hours(sum(time.hours for time in times))} ({parts})"
    if all(time.cost is not None for time in times):
        text += f", cost {sum(time.cost for time in times):,.2f}"
    return text


def devices_layout(config: dict) -> str:
    """'2 nodes x 8 GPUs, FSDP hybrid sharding (...), optimizer states in CPU memory (12 GiB per node)', or ''
    for one device."""
    gpus, nodes = config.get("num_gpus", 1), config.get("num_nodes", 1)
    if gpus * nodes <= 1 and config.get("offload", "none") == "none":
        return ""
    parts = [hardware_label(gpus, nodes)]
    if config.get("sharding") in ENGINE_NAMES:
        parts.append(ENGINE_NAMES[config["sharding"]])
    if config.get("offload") in OFFLOAD_NAMES:
        offloaded = config.get("offloaded_gib_per_node")
        parts.append(OFFLOAD_NAMES[config["offload"]] + (f" ({offloaded:,.0f} GiB per node)" if offloaded else ""))
    return ", ".join(parts)


def on_cuda(plan: Plan) -> bool:
    """Whether the plan's device runs CUDA (a CPU plan has no CUDA context to report)."""
    try:
        return resolve_gpu(plan.profile.gpu).cuda
    except UserError:
        return True
