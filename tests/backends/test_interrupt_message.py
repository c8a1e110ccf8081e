"""The Ctrl-C message names the checkpoint the Trainer will keep (it saves when the step in progress ends)."""

import os
import signal
from types import SimpleNamespace

from advisor.backends.callbacks import SaveOnInterrupt


def state(step: int) -> SimpleNamespace:
    return SimpleNamespace(global_step=step, max_steps=40)


def interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_inside_a_step_names_that_step(capsys):
    callback = SaveOnInterrupt()
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    callback.on_train_begin(None, state(0), control)
    try:
        callback.on_step_begin(None, state(12), control)
        interrupt()
        assert "finishing step 13/40, then saving checkpoint-13 and stopping" in capsys.readouterr().err
        callback.on_step_end(SimpleNamespace(save_total_limit=1), state(13), control)  # the Trainer saves checkpoint-{global_step} now
        assert control.should_save and control.should_training_stop
    finally:
        callback.restore()


def test_ctrl_c_between_steps_names_the_next_one(capsys):
    callback = SaveOnInterrupt()
    control = SimpleNamespace(should_save=False, should_training_stop=False)
    callback.on_train_begin(None, state(20), control)
    try:
        assert callback.kept_step() == 21  # resumed at 20: the first step to end is 21
        callback.on_step_begin(None, state(20), control)
        callback.on_step_end(SimpleNamespace(save_total_limit=1), state(21), control)  # evaluation or saving of step 21 runs after this
        interrupt()
        assert "saving checkpoint-22" in capsys.readouterr().err
    finally:
        callback.restore()
