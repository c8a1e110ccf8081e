"""Run `advisor execute` as a subprocess and follow it: output lines, progress bar, live loss.

The executor's stdout and stderr go to the log line by line; its progress log
`DIR/progress.jsonl` is polled twice a second for the bar and the loss chart
(without it, only the lines show). Escape or Ctrl-C sends SIGINT: the executor
saves a checkpoint and prints how to resume. After the run, `DIR/metrics.json`
is summarised and Escape goes back. The executor runs in its own session, so a
closed terminal (SIGHUP to the wizard) would not reach it: the wizard passes the
stop on, and the run ends with a checkpoint instead of training on, unwatched.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
from pathlib import Path
from typing import Any, Optional

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, RichLog, Static

from ..progress import ProgressTail
from ..widgets.loss_chart import LossChart

STOP_HINT = "Escape or Ctrl-C stops it with a checkpoint"
#: How long a stopped executor gets to save its checkpoint before the app gives up waiting.
STOP_GRACE_S = 60.0


def metric_summary(metrics: dict[str, Any]) -> list[str]:
    """The headline numbers of metrics.json: k-fold mean ± std, the final validation, the test set."""
    lines = []
    for name, stats in (metrics.get("kfold_summary") or {}).items():
        if isinstance(stats, dict) and isinstance(stats.get("mean"), (int, float)):
            lines.append(f"{name} {stats['mean']:.4g} ± {stats.get('std') or 0:.2g} (k-fold)")
    sections = (("validation", (metrics.get("main") or {}).get("final_eval")), ("test", metrics.get("test")))
    for label, values in sections:
        for name, value in (values or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                lines.append(f"{label} {name.removeprefix('eval_').removeprefix('test_')} {value:.4g}")
    return lines


#: What to do after `advisor execute` exits with this code (CONTRACT.md's exit codes).
NEXT_STEP = {
    1: "the data or the preflight refused the run: fix what the line says (`advisor validate` lists bad records), "
       "then Escape and execute again",
    2: "a value or a path was not accepted: Escape, change it, and execute again",
}


def failure_report(code: Optional[int], output: list[str]) -> str:
    """A failed run in three parts: the line that says why, the exit code, and what to do next."""
    reason = next((line.strip() for line in reversed(output) if line.strip().lower().startswith("error")), None)
    if reason is None:
        reason = next((line.strip() for line in reversed(output) if line.strip()), "no output")
    advice = NEXT_STEP.get(code or 0, "the log above has the whole output (Tab to it, End for its last lines)")
    return f"failed (exit {code}): {reason}\nwhat to do: {advice}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RunScreen(Screen):
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("escape", "stop_or_back", "Stop / back"),
        Binding("ctrl+c", "stop_or_back", "Stop", show=False, priority=True),
    ]

    def __init__(self, argv: list[str], output_dir: Path) -> None:
        super().__init__()
        self.argv = argv
        self.output_dir = output_dir
        self.process: Optional[asyncio.subprocess.Process] = None
        self.returncode: Optional[int] = None
        self.stopping = False
        self.output: list[str] = []
        self.tail = ProgressTail(output_dir / "progress.jsonl")
        self.sub_title = "training"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"$ {shlex.join(self.argv)}", id="run-command", markup=False)
        yield ProgressBar(id="run-progress", show_eta=True)
        yield LossChart(id="run-loss")
        with Vertical(id="run-lower"):  # the status keeps its lines; the log gets what is left
            # min_width: RichLog's default (78) is wider than the log at 80 columns, which cut lines on the right
            yield RichLog(id="run-output", max_lines=5000, wrap=True, markup=False, highlight=False, min_width=20)
            yield Static("starting ...", id="run-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(0.5, self.follow_progress)
        self.call_after_refresh(self.execute)  # after the layout, so the log's width is known

    @work(exclusive=True, group="execute")
    async def execute(self) -> None:
        log = self.query_one(RichLog)
        # The run's own tables (rich) are laid out for the log's width, not for the 80 columns of a pipe.
        width = log.scrollable_content_region.width
        env = os.environ | {"PYTHONUNBUFFERED": "1"} | ({"COLUMNS": str(width)} if width >= 40 else {})
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as error:
            self.finish(None, f"could not start: {error}")
            return
        self.status(f"running · {STOP_HINT}")
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.hang_up)
        try:
            assert self.process.stdout is not None
            async for raw in self.process.stdout:
                # a progress bar redraws with carriage returns: keep what it shows last
                line = next((part for part in reversed(raw.decode("utf-8", errors="replace").rstrip("\n").split("\r"))
                             if part.strip()), "")
                self.output.append(line)
                log.write(line)
            code = await self.process.wait()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)
            await self.stop_process()
        self.follow_progress()
        self.finish(code)

    async def stop_process(self) -> None:
        """When the screen or the app goes away mid-run: SIGINT, a grace period, then kill."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_S)
        except asyncio.TimeoutError:
            process.kill()

    def hang_up(self) -> None:
        """The terminal closed: stop the run with a checkpoint (as Ctrl-C does) and leave."""
        if self.process is not None and self.process.returncode is None:
            self.stopping = True
            self.process.send_signal(signal.SIGINT)
        self.app.exit()

    def follow_progress(self) -> None:
        events = self.tail.read()
        if not events:
            return
        last = events[-1]
        self.query_one(ProgressBar).update(total=last.max_steps, progress=last.step)
        self.query_one(LossChart).add(events)
        if self.returncode is None and not self.stopping:
            left = f" · about {duration(last.eta_s)} left" if last.eta_s is not None else ""
            self.status(f"running · step {last.step} of {last.max_steps}{left} · {STOP_HINT}")

    def finish(self, code: Optional[int], message: Optional[str] = None) -> None:
        self.returncode = code
        if message is None:
            if code == 0:
                message = f"finished · results in {self.output_dir}"
            elif self.stopping:
                resume = next((line for line in reversed(self.output) if "--resume" in line), None)
                message = f"stopped (exit {code}) · " + (resume or "the lines above say how to resume")
            else:
                message = failure_report(code, self.output)
        metrics_file = self.output_dir / "metrics.json"
        if metrics_file.is_file():
            try:
                metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
                if isinstance(metrics, dict):
                    message += "\n" + " · ".join(metric_summary(metrics)[:8])
            except (OSError, ValueError):
                pass
        self.status(message + "\nEscape goes back")
        self.set_class(code != 0, "-failed")

    def status(self, text: str) -> None:
        self.query_one("#run-status", Static).update(text)

    def action_stop_or_back(self) -> None:
        running = self.process is not None and self.process.returncode is None and self.returncode is None
        if running and not self.stopping:
            self.stopping = True
            self.process.send_signal(signal.SIGINT)
            self.status("stopping: the executor is saving a checkpoint ...")
        elif not running:
            self.app.pop_screen()
