"""The preflight: rows without loss refused by line, the preview's markers, estimates, the probe and its downshift."""

from __future__ import annotations

import functools
import io
import json
import random

import pytest
import torch
from rich.console import Console
from transformers import LlamaForCausalLM

from advisor.backends.models import ExecuteRequest
from advisor.backends.prepared import prepare
from advisor.backends.preflight import estimate_at, offload_as_launched, run_preflight
from advisor.backends.preflight_report import PreflightReport, render_preflight

from conftest import alpaca_records, banking77_sample, make_plan, write_jsonl

LONG_QUESTION = " ".join(["name the colour of the sky and the sea and the grass"] * 4)


def prepared_for(tmp_path, model, records, **plan_settings):
    data = records if not isinstance(records, list) else write_jsonl(tmp_path / "data.jsonl", records)
    plan = make_plan(str(model), **plan_settings)
    request = ExecuteRequest(plan=plan, plan_path="plan.json", data=str(data), output_dir=str(tmp_path / "run"))
    return prepare(request)


def chat(question: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def rendered(report: PreflightReport, terminal: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, color_system="standard" if terminal else None, width=100)
    render_preflight(report, console)
    return buffer.getvalue()


@pytest.fixture
def failing_forward(monkeypatch):
    """The tiny Llama's forward raises `error` the first `count` times (a full GPU: torch.OutOfMemoryError)."""
    original = LlamaForCausalLM.forward

    def arm(count: int, error: Exception) -> list[int]:
        raised = [0]

        @functools.wraps(original)  # the Trainer reads the signature to keep the model's input columns
        def forward(self, *args, **kwargs):
            if raised[0] < count:
                raised[0] += 1
                raise error
            return original(self, *args, **kwargs)

        monkeypatch.setattr(LlamaForCausalLM, "forward", forward)
        return raised

    return arm


OOM = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected by a test)")


def test_chat_rows_whose_responses_truncation_cuts_away_are_refused_by_line(tmp_path, tiny_llama):
    records = [chat("the sky", "blue"), chat(LONG_QUESTION, "blue"), chat("the sea", "blue"),
               chat(LONG_QUESTION, "green"), chat("the grass", "green")]
    prepared = prepared_for(tmp_path, tiny_llama, records, seq_len=16)
    report = run_preflight(prepared)
    assert not report.ok
    assert [error.line for error in report.errors] == [2, 4]
    assert report.rows_without_loss == 2
    assert "seq_len 16" in report.errors[0].message and "raise seq_len" in report.errors[0].message
    assert report.probe.ran is False  # nothing trains, so nothing is probed
    text = rendered(report, terminal=False)
    assert "REFUSED" in text
    assert "error: line 2: no token carries loss" in text and "error: line 4:" in text


def long_prompt_rows() -> list[dict]:
    """Six alpaca rows; rows 2 and 5 have a prompt of about 70 tokens, which fills seq_len 48 on its own."""
    short = {"instruction": "name the colour of the sky", "input": "", "output": "the sky is blue today"}
    long = {"instruction": LONG_QUESTION, "input": "", "output": "blue"}
    return [short, long, short, short, long, short]


def test_rows_whose_prompt_fills_seq_len_are_left_out_by_line_under_drop(tmp_path, tiny_llama):
    prepared = prepared_for(tmp_path, tiny_llama, long_prompt_rows(), seq_len=48,
                            data={"validation_ratio": 0.25, "long_prompts": "drop"})
    report = run_preflight(prepared, probe=False)
    assert report.ok and report.errors == [] and report.rows_without_loss == 0
    assert report.rows_left_out == 2 and report.left_out_lines == [2, 5]
    [warning] = [line for line in report.warnings if "left out" in line]
    assert warning.startswith("2 of 6 rows are left out: the prompt alone fills seq_len 48") and "(line 2, 5)" in warning
    assert "ok: 4 rows ready to train (2 left out)" in rendered(report, terminal=False)
    # the run's encoding trains on exactly the rows the preflight let through
    assert [index for index, feature in enumerate(prepared.encoded.features) if feature is not None] == [0, 2, 3, 5]


def test_rows_whose_prompt_fills_seq_len_are_refused_naming_the_key_under_refuse(tmp_path, tiny_llama):
    prepared = prepared_for(tmp_path, tiny_llama, long_prompt_rows(), seq_len=48)  # long_prompts: the default
    assert prepared.request.plan.training.data.long_prompts == "refuse"
    report = run_preflight(prepared, probe=False)
    assert not report.ok and [error.line for error in report.errors] == [2, 5] and report.rows_left_out == 0
    message = report.errors[0].message
    assert "--seq-len" in message and 'set plan.json training.data.long_prompts to "drop"' in message


def test_only_rows_that_truncation_emptied_count_as_long_prompts():
    """A row with nothing to learn before truncation, or one the chat template hides, stays an error under drop."""
    from advisor.backends.preflight import RowView, prompt_filled

    def row(first_loss):
        return RowView(ids=[], labels=[], cut=0, full_length=60, first_loss=first_loss)

    rows = [row(50), row(None), row(48), row(10), row(70)]
    assert prompt_filled(rows, dropped=[0, 1, 2, 4], refused={4: "the template rewrites it"}, seq_len=48) == [0, 2]


def test_the_preview_marks_the_prompt_as_no_loss_and_leaves_the_response_plain(tmp_path, tiny_llama):
    record = {"instruction": "name the colour of the sky", "input": "", "output": "the sky is blue today"}
    prepared = prepared_for(tmp_path, tiny_llama, [record] * 4, seq_len=64)
    report = run_preflight(prepared, probe=False)
    assert report.ok and len(report.preview) == 2
    row = report.preview[0]
    assert row.line == 1
    masked = "".join(span.text for span in row.spans if not span.loss)
    learned = "".join(span.text for span in row.spans if span.loss)
    assert masked.startswith("<s>") and "colour of the sky" in masked and "Write a response" in masked
    assert learned.split() == ["the", "sky", "is", "blue", "today", "</s>"]
    assert row.text_marked.startswith("[no loss: <s>")
    assert row.text_marked.endswith("] the sky is blue today </s>")
    assert "[no loss: " in json.loads(report.model_dump_json())["preview"][0]["text_marked"]
    plain, coloured = rendered(report, terminal=False), rendered(report, terminal=True)
    assert "[no loss: <s>" in plain and "\x1b[" not in plain  # a pipe keeps the markers, gets no escapes
    assert "\x1b[2m" in coloured  # a terminal dims the no-loss spans


def test_truncated_rows_are_counted_with_their_lines_and_lengths_are_measured(tmp_path, tiny_llama):
    short = {"instruction": "the sky", "input": "", "output": "blue"}
    long_answer = {"instruction": "the sky", "input": "", "output": " ".join(["the sky is blue today"] * 10)}
    # A large micro-batch, so that the tiny model's estimates differ by more than their rounding.
    prepared = prepared_for(tmp_path, tiny_llama, [short, long_answer, short, long_answer] + [short] * 36,
                            seq_len=40, batch_size=256)
    report = run_preflight(prepared, probe=False)
    assert report.ok  # cut, but each long row keeps some response
    assert report.truncated_rows == 2 and report.truncated_lines == [2, 4]
    assert report.truncated_rows == prepared.encoded.truncated
    assert report.preview[1].cut_tokens > 0
    assert report.token_lengths.max == 40 and report.token_lengths.p95 < 40
    assert any(warning.startswith("2 of 40 rows are longer than seq_len 40") for warning in report.warnings)
    memory = report.memory
    assert (memory.p95_tokens, memory.max_tokens) == (report.token_lengths.p95, 40)
    assert memory.at_max_gib > memory.at_p95_gib > 0 and memory.fits_longest is True


def test_a_longest_batch_that_does_not_fit_the_plans_device_is_a_warning(tmp_path, tiny_llama):
    prepared = prepared_for(tmp_path, tiny_llama, alpaca_records(8), seq_len=64)
    plan = prepared.request.plan
    tiny_device = plan.profile.model_copy(update={"gpu_memory_gib": 1e-4})
    prepared.request.plan = plan.model_copy(update={"profile": tiny_device})
    report = run_preflight(prepared, probe=False)
    assert report.memory.device_gib == 1e-4 and report.memory.fits_longest is False
    assert report.ok  # a warning: the run's downshift may still save it
    assert any("longest micro-batch" in warning for warning in report.warnings)


def test_the_probe_runs_the_longest_batch_and_leaves_the_random_state_alone(tmp_path, tiny_llama):
    prepared = prepared_for(tmp_path, tiny_llama, alpaca_records(12), batch_size=4, seq_len=64)
    torch_state, python_state = torch.get_rng_state(), random.getstate()
    report = run_preflight(prepared)
    assert torch.equal(torch.get_rng_state(), torch_state) and random.getstate() == python_state
    probe = report.probe
    assert report.ok and probe.ran and probe.error is None
    assert probe.device == "CPU" and probe.seconds > 0 and probe.downshifts == []
    assert probe.shape == prepared.initial_shape()
    assert probe.rows == 4 and probe.tokens == report.token_lengths.max
    assert not (tmp_path / "run").exists()  # the probe writes nothing where the run goes


def test_out_of_memory_in_the_probe_downshifts_and_names_the_shape_to_start_from(tmp_path, tiny_llama, failing_forward):
    prepared = prepared_for(tmp_path, tiny_llama, alpaca_records(12), batch_size=4, seq_len=64)
    raised = failing_forward(1, OOM)
    report = run_preflight(prepared)
    assert raised[0] == 1 and report.ok
    probe = report.probe
    assert probe.shape.model_dump() == {"batch_size": 4, "gradient_accumulation_steps": 1,
                                        "gradient_checkpointing": True}
    assert len(probe.downshifts) == 1 and "out of memory" in probe.downshifts[0].error.lower()
    assert any("the run starts at micro-batch 4" in warning for warning in report.warnings)
    assert "out of memory at micro-batch 4: downshifted" in rendered(report, terminal=False)


def test_out_of_memory_at_the_smallest_shape_refuses_the_run(tmp_path, tiny_llama, failing_forward):
    prepared = prepared_for(tmp_path, tiny_llama, alpaca_records(8), batch_size=2, seq_len=64)
    failing_forward(100, OOM)
    report = run_preflight(prepared)
    assert not report.ok and report.errors == []
    assert report.probe.error.startswith("out of memory even at micro-batch 1")
    assert [shift.after.batch_size for shift in report.probe.downshifts] == [2, 1]
    assert "error: probe: out of memory" in rendered(report, terminal=False)


def test_a_failure_at_the_first_step_is_one_line_in_the_report(tmp_path, tiny_llama, failing_forward):
    prepared = prepared_for(tmp_path, tiny_llama, alpaca_records(8), batch_size=2, seq_len=64)
    failing_forward(1, KeyError("labels"))
    report = run_preflight(prepared)
    assert not report.ok and report.probe.error == "KeyError: 'labels'" and report.probe.downshifts == []


def test_classification_rows_preview_their_label_and_the_probe_runs(tmp_path, tiny_bert):
    data = banking77_sample(tmp_path / "banking.csv", labels=3, per_label=4)
    prepared = prepared_for(tmp_path, tiny_bert, data, task="classification", seq_len=16, batch_size=4)
    report = run_preflight(prepared)
    assert report.ok and report.rows_without_loss == 0 and report.probe.ran and report.probe.error is None
    row = report.preview[0]
    assert row.label in prepared.labels and row.text_marked.startswith("[no loss: [CLS]")
    assert report.truncated_rows == prepared.encoded.truncated


@pytest.mark.parametrize("sharding, offload", [("hybrid", "parameters"), ("zero3", "optimizer")])
def test_the_preflight_estimates_the_plans_nodes_sharding_and_offload(tmp_path, tiny_llama, sharding, offload):
    from advisor.estimate import EstimateRequest, estimate
    from advisor.knowledge_base import resolve_gpu, resolve_model
    from advisor.manager import footprint_of

    prepared = prepared_for(tmp_path, tiny_llama, alpaca_records(8), seq_len=64, batch_size=64,
                            gradient_accumulation_steps=4)
    architecture = resolve_model(str(tiny_llama)).architecture
    planned = estimate(EstimateRequest(
        architecture=architecture, footprint=footprint_of(prepared.method, architecture, prepared.method_hp),
        precision="fp32", batch_size=64, seq_len=64, num_gpus=8, num_nodes=2, sharding=sharding, offload=offload,
        gradient_accumulation_steps=4, adamw_implementation="foreach", gpu=resolve_gpu("h100")))
    planned.config.setdefault("adamw_implementation", "foreach")
    plan = prepared.request.plan
    profile = plan.profile.model_copy(update={"gpu": "h100", "num_gpus": 8, "num_nodes": 2})
    prepared.request.plan = plan.model_copy(update={"profile": profile, "estimate": planned})
    again = estimate_at(prepared, 64, 64, False)
    assert again.memory == planned.memory and again.config["offload"] == offload
    # One node without offload (what the preflight estimated before): another breakdown, so the check can fail.
    prepared.request.plan = plan.model_copy(update={"profile": plan.profile.model_copy(update={"gpu": "h100"})})
    assert estimate_at(prepared, 64, 64, False).memory.breakdown != planned.memory.breakdown


def test_an_offload_the_engine_lacks_is_estimated_as_it_launches():
    assert [offload_as_launched(sharding, offload) for sharding, offload in
            [("fsdp", "optimizer"), ("zero2", "parameters"), ("ddp", "optimizer"), ("hybrid", "parameters")]] == \
        ["parameters", "optimizer", "none", "parameters"]
