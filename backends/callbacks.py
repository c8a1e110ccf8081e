"""Trainer callbacks for a run a person watches: a progress bar with ETA, and Ctrl-C that saves.

`local.py` puts `RunProgress` in place of the Trainer's own progress bar (and
of the printer that would write log dicts to stdout, which `--json` keeps for
one document) and adds `SaveOnInterrupt`. The first Ctrl-C (or SIGTERM, what
a scheduler or `kill` sends) asks the Trainer to save a checkpoint at the end
of the current step and stop, and names it; `local.py` then prints the resume
command. A second one stops at once.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from transformers import TrainerCallback


class RunProgress(TrainerCallback):
    """A tqdm bar per model on stderr (steps, loss, last evaluation, elapsed, ETA), and progress.jsonl.

    progress.jsonl gets one JSON line per logged step or evaluation:
    {"run", "step", "max_steps", "loss" | "eval_loss", "eta_s"}; the wizard's
    run screen follows it.
    """

    def __init__(self, label: str, watch: str, log_path: Optional[Path] = None) -> None:
        self.label = label
        self.watch = watch
        self.log_path = log_path
        self.bar: Any = None
        self.postfix: dict[str, str] = {}
        self._started = 0.0
        self._first_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self._started, self._first_step = time.monotonic(), state.global_step
        if state.is_world_process_zero:
            interactive = sys.stderr.isatty()
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc=self.label, unit="step", file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5 if interactive else 30.0,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def eta_s(self, state: Any) -> Optional[float]:
        done = state.global_step - self._first_step
        if done <= 0:
            return None
        return (time.monotonic() - self._started) / done * (state.max_steps - state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Optional[dict] = None, **kwargs: Any) -> None:
        if self.bar is None or not logs:
            return
        event: dict[str, Any] = {"run": self.label, "step": state.global_step, "max_steps": state.max_steps}
        if "loss" in logs:
            self.postfix["loss"] = f"{logs['loss']:.4f}"
            event["loss"] = logs["loss"]
        if "eval_loss" in logs:
            event["eval_loss"] = logs["eval_loss"]
            watched = logs.get(f"eval_{self.watch}")
            if watched is not None:
                self.postfix[f"val_{self.watch}"] = f"{watched:.4f}"
        self.bar.set_postfix(self.postfix, refresh=False)
        if self.log_path is not None and len(event) > 3:
            event["eta_s"] = self.eta_s(state)
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event) + "\n")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


#: The signals that stop a run with a checkpoint: Ctrl-C, and the polite stop of `kill` and job schedulers.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SaveOnInterrupt(TrainerCallback):
    """SIGINT or SIGTERM -> finish the step in progress, save its checkpoint, stop; the message names it.

    The Trainer saves at the end of a step, after `on_step_end`: a signal inside step N (or between its
    increment and this callback) keeps checkpoint-N; one after it (evaluation, saving, the next batch
    loading) keeps checkpoint-(N+1), the next step to end.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: dict[int, Any] = {}
        self._step = 0
        self._step_ended = True
        self._max_steps = 0

    def _handle(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        # A second signal raises KeyboardInterrupt (Python's Ctrl-C) at once.
        for stop in STOP_SIGNALS:
            signal.signal(stop, signal.default_int_handler)
        name = "interrupt" if signum == signal.SIGINT else "terminate"
        print(f"\n{name}: {self.intention()} (Ctrl-C again to stop now)", file=sys.stderr)

    def kept_step(self) -> int:
        """The step whose checkpoint an interrupt now keeps."""
        return self._step + 1 if self._step_ended else self._step

    def intention(self) -> str:
        step = self.kept_step()
        return f"finishing step {step}/{self._max_steps}, then saving checkpoint-{step} and stopping"

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step, self._step_ended, self._max_steps = state.global_step, True, state.max_steps
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = {stop: signal.signal(stop, self._handle) for stop in STOP_SIGNALS}

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._step, self._step_ended = state.global_step + 1, False

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._step_ended = True
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
            # With save_total_limit 1 the Trainer ends train() by deleting every checkpoint but the best one
            # (transformers 5.24, Trainer._inner_training_loop): the one this stop saves would go with them.
            args.save_total_limit = max(args.save_total_limit or 0, 2)
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restore()

    def restore(self) -> None:
        """Give the signals back to whoever had them (also after an exception inside train())."""
        for stop, previous in self._previous.items():
            signal.signal(stop, previous)
        self._previous = {}
