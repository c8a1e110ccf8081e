"""The answer: approach and method, why (with sources), memory, storage and time, alternatives;
a plan in stages (continued pre-training, then task tuning) lists each stage with its method and cost.

The plan comes from the core planner (`app.planner`, `advisor.planner.plan_for`
by default) in a worker thread; picking an alternative plans again with that
method forced, as `advisor plan --method NAME` would. From here the person
saves the plan, copies the equivalent command, or executes the plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from textual import on, work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from ...cli.render import devices_layout, stage_line, stages_total
from ...errors import UserError
from ...models import Plan, Profile
from ..answers import command_line
from ..widgets.alternatives import AlternativesTable
from ..widgets.memory_bars import MemoryBars
from ..widgets.rationale import RationaleList
from .dialogs import ConfirmDialog, ExecuteDialog, RunRequest, SavePlanDialog
from .run import RunScreen

if TYPE_CHECKING:
    from ..app import AdvisorApp

APPROACHES = {"prompting": "Prompting", "rag": "RAG", "peft": "PEFT", "full_finetune": "Full fine-tuning"}


def headline(plan: Plan) -> str:
    rec = plan.recommendation
    text = APPROACHES[rec.approach] + (f" · {rec.method}" if rec.method else "")
    text += "".join(f" + {complement}" for complement in rec.complements)
    return text + (" · does not fit" if not fits(plan) else "")


def fits(plan: Plan) -> bool:
    return plan.estimate is None or plan.estimate.fits is not False


def costs(plan: Plan) -> str:
    """The devices (several, or offloading), storage and time, a line each, as `advisor plan` prints them."""
    estimate = plan.estimate
    if estimate is None:
        return ""
    layout = devices_layout(estimate.config)
    lines = [f"Devices: {layout}"] if layout else []
    if estimate.storage:
        storage = estimate.storage
        lines.append(f"Storage: {storage.per_task_mb:,.1f} MB per task, {storage.total_mb:,.1f} MB in all")
    if estimate.time:
        cost = f", cost {estimate.time.cost:,.2f}" if estimate.time.cost is not None else ""
        lines.append(f"Time: {estimate.time.hours_text()} at ~{estimate.time.tokens_per_s:,.0f} tokens/s{cost}")
    return "\n".join(lines)


def free_directory(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first that does not exist yet."""
    candidate, number = base, 2
    while candidate.exists() or plan_file_for(candidate).exists():
        candidate, number = base.with_name(f"{base.name}-{number}"), number + 1
    return candidate


def plan_file_for(output_dir: Path) -> Path:
    """Where Execute saves the plan it runs: next to the output directory, named after it."""
    return output_dir.with_name(output_dir.name + ".plan.json")


class RecommendationScreen(Screen):
    app: "AdvisorApp"

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "recommended", "Recommended"),
        Binding("s", "save", "Save"),
        Binding("c", "copy", "Copy command"),
        Binding("x", "execute", "Execute"),
    ]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    def __init__(self, profile: Profile) -> None:
        super().__init__()
        self.profile = profile
        self.plan: Optional[Plan] = None
        self.sub_title = "recommendation"

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="plan-body"):
            yield Static(id="headline", markup=False)
            yield Static(id="summary", markup=False)
            yield Static(id="stages", markup=False)
            with Horizontal(id="plan-columns"):
                with VerticalScroll(id="why", classes="panel") as why:
                    why.border_title = "Why"
                    yield RationaleList()
                with Vertical(id="plan-side"):
                    with Vertical(id="cost", classes="panel") as cost:
                        cost.border_title = "Memory per device"
                        yield MemoryBars()
                        yield Static(id="storage-time", markup=False)
                    yield Static(id="warnings", markup=False)
            yield Static("Alternatives: Enter plans with the highlighted method, r goes back to the recommendation",
                         classes="section-title", markup=False)  # a Static wraps at 80 columns; a Label is cut
            yield AlternativesTable(id="alternatives")
            yield Static(id="command", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.replan(self.profile)
        self.query_one(AlternativesTable).focus()

    def replan(self, profile: Profile) -> None:
        self.query_one("#plan-body").loading = True
        self.plan_in_background(profile)

    @work(thread=True, exclusive=True, group="plan")
    def plan_in_background(self, profile: Profile) -> None:
        try:
            plan = self.app.planner(profile)
        except UserError as error:
            outcome = (self.show_error, profile, error.message)
        else:
            outcome = (self.show, profile, plan)
        if not get_current_worker().is_cancelled:  # a newer request has replaced this one
            self.app.call_from_thread(*outcome)

    def show(self, profile: Profile, plan: Plan) -> None:
        self.profile, self.plan = profile, plan
        self.query_one("#plan-body").loading = False
        self.query_one("#headline", Static).update(headline(plan))
        for part in ("#headline", "#cost"):
            self.query_one(part).set_class(not fits(plan), "-over")
        self.query_one("#summary", Static).update(plan.recommendation.summary)
        stages = "\n".join([stage_line(number, stage) for number, stage in enumerate(plan.stages, 1)]
                           + ([stages_total(plan.stages)] if plan.stages else []))
        self.query_one("#stages", Static).update(stages)
        self.query_one("#stages").display = bool(stages)
        self.query_one(RationaleList).entries = list(plan.rationale)
        bars = self.query_one(MemoryBars)
        bars.memory = plan.estimate.memory if plan.estimate else None
        bars.device_gib = plan.estimate.device_memory_gib if plan.estimate else None
        self.query_one("#storage-time", Static).update(costs(plan))
        self.query_one(AlternativesTable).show(plan.alternatives)
        self.query_one("#warnings", Static).update("\n".join(f"⚠ {warning}" for warning in plan.warnings))
        self.query_one("#command", Static).update(f"$ {command_line(profile)}")
        self.refresh_bindings()

    def show_error(self, profile: Profile, message: str) -> None:
        """The planner refused: say why; the alternatives stay, so another can be picked."""
        self.profile, self.plan = profile, None
        self.query_one("#plan-body").loading = False
        self.query_one("#headline", Static).update("No plan")
        self.query_one("#summary", Static).update(f"error: {message}")
        self.query_one(RationaleList).entries = []
        self.query_one(MemoryBars).memory = None
        for part in ("#storage-time", "#warnings", "#stages"):
            self.query_one(part, Static).update("")
        self.query_one("#stages").display = False
        self.query_one("#command", Static).update(f"$ {command_line(profile)}")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> Optional[bool]:
        """Save and Execute need a plan; Execute also needs something to train."""
        if action == "save":
            return True if self.plan is not None else None
        if action == "execute":
            return True if self.plan is not None and self.plan.training is not None else None
        if action == "recommended":
            return self.profile.method is not None
        return True

    @on(AlternativesTable.Picked)
    def pick(self, event: AlternativesTable.Picked) -> None:
        self.replan(self.profile.model_copy(update={"method": event.method}))

    def action_recommended(self) -> None:
        self.replan(self.profile.model_copy(update={"method": None}))

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_copy(self) -> None:
        command = command_line(self.profile)
        self.app.copy_to_clipboard(command)
        self.notify(command, title="Copied to the clipboard", markup=False)

    @work
    async def action_save(self) -> None:
        plan = self.plan
        path = await self.app.push_screen_wait(SavePlanDialog("plan.json"))
        if path is None or plan is None:
            return
        if path.exists() and not await self.app.push_screen_wait(ConfirmDialog(f"'{path}' exists. Overwrite it?")):
            self.notify(f"'{path}' left as it was", title="Not saved", markup=False)
            return
        try:
            path.write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            self.notify(f"cannot write '{path}': {error.strerror}", title="Not saved", severity="error", markup=False)
        else:
            self.notify(str(path), title="Plan saved", markup=False)

    @work
    async def action_execute(self) -> None:
        plan = self.plan
        if plan is None or plan.training is None:
            reason = "nothing fits this hardware" if plan and plan.estimate else "the plan does not fine-tune"
            self.notify(f"Nothing to execute: {reason}", title="Not started", severity="warning", markup=False)
            return
        suggestion = free_directory(Path("runs") / f"{Path(self.profile.model).name}-{plan.training.method}")
        dialog = ExecuteDialog(self.profile.data, str(suggestion))
        request: Optional[RunRequest] = await self.app.push_screen_wait(dialog)
        if request is None:
            return
        plan_file = plan_file_for(request.output_dir)
        if request.output_dir.exists() or plan_file.exists():
            self.notify(f"'{request.output_dir}' or '{plan_file}' exists; choose a new output directory",
                        title="Not started", severity="error", markup=False)
            return
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        plan_file.write_text(plan.model_dump_json(indent=2) + "\n", encoding="utf-8")
        argv = [*self.app.executor, str(plan_file),
                "--data", str(request.data), "--output-dir", str(request.output_dir)]
        await self.app.push_screen(RunScreen(argv, request.output_dir))
