"""The wizard's bookkeeping without the screens: answers as a Profile, the equivalent command, progress.jsonl."""

from __future__ import annotations

import json
import shlex

import pytest

from advisor.cli.main import build_parser
from advisor.cli.plan import profile_from_args
from advisor.errors import UserError
from advisor.models import Profile, validate_profile
from advisor.tui.answers import answer, command_line, given
from advisor.tui.progress import ProgressTail


def test_only_answers_that_differ_from_the_defaults_count():
    profile = answer(Profile(), {"goal": "behavior", "examples": "300", "gpu": "rtx4090", "seq_len": None})
    assert given(profile) == {"examples": 300, "gpu": "rtx4090"}
    assert profile.model_fields_set == {"examples", "gpu"}, "the planner may fill the rest from the data"
    assert given(answer(profile, {"examples": None})) == {"gpu": "rtx4090"}, "a blank field is the default again"


def test_a_bad_answer_is_the_clis_one_line_error():
    with pytest.raises(UserError, match="invalid value 'lots' for 'examples'"):
        answer(Profile(), {"examples": "lots"})


@pytest.mark.parametrize("values", [
    {},
    {"goal": "knowledge", "dynamic_knowledge": True, "one_off": True},
    {"task": "classification", "examples": 2000, "model": "all-minilm-l6-v2", "gpu": "t4", "num_gpus": 2,
     "gpu_memory_gib": 11.5, "price_per_hour": 0.4, "latency": "strict", "tasks": 3, "seq_len": 256,
     "batch_size": 4, "method": "qlora", "data": "my data/train set.jsonl"},
    {"goal": "knowledge", "goals": ["knowledge", "behavior"], "keep_general_ability": True, "continual_updates": True,
     "task": "chat", "corpus_tokens": 50_000_000, "language": "de", "num_gpus": 8, "num_nodes": 2},
    {"goals": ["behavior", "knowledge"], "task": "preference"},
])
def test_the_command_line_gives_the_same_profile_to_advisor_plan(values):
    profile = validate_profile(values)
    words = shlex.split(command_line(profile))
    assert words[:2] == ["advisor", "plan"]
    assert profile_from_args(build_parser().parse_args(words[1:])) == profile


def test_progress_tail_returns_each_event_once_and_waits_for_a_whole_line(tmp_path):
    path = tmp_path / "progress.jsonl"
    tail = ProgressTail(path)
    assert tail.read() == [], "no file yet"
    first = json.dumps({"run": "fold-0", "step": 1, "max_steps": 4, "loss": 2.0, "eta_s": 3.0})
    path.write_text(first + "\n" + "not json\n" + '{"step": 2, "max_st')
    assert [(e.step, e.loss) for e in tail.read()] == [(1, 2.0)]
    with open(path, "a") as handle:
        handle.write('eps": 4, "eval_loss": 1.5}\n')
    events = tail.read()
    assert [(e.step, e.max_steps, e.loss, e.eval_loss) for e in events] == [(2, 4, None, 1.5)]
    assert tail.read() == []
