"""What the plan says when the person forces something: a --method that does not fit or goes against their other
answers, a --seq-len above the model's context, a --batch-size the device cannot take (second expert review,
defects 1, 4, 10, 13 and the "~0.0 h" of 15)."""

import json
import re

import pytest

from advisor.cli.main import main
from advisor.models import Plan, Profile
from advisor.planner import make_plan
from advisor.quantities import about_hours, hours_span, megabytes

#: 70B full fine-tuning needs far more than one 80 GB device; its 4-bit base (QLoRA) fits there.
FULL_70B_ON_H100 = dict(examples=5000, model="llama-3.1-70b", gpu="h100", method="full")


def plan_of(**overrides) -> Plan:
    return make_plan(Profile(**overrides))


def rationale(plan: Plan) -> dict[str, str]:
    return {entry.rule: entry.message for entry in plan.rationale}


def no_placeholder_left(plan: Plan) -> None:
    texts = [plan.recommendation.summary, *plan.warnings, *(entry.message for entry in plan.rationale),
             *(alt.why_not for alt in plan.alternatives)]
    assert not [text for text in texts if re.search(r"\{[a-z_]+(:[^}]*)?\}", text)]


# -- defect 1: a forced method that does not fit -----------------------------------------
@pytest.fixture(scope="module")
def forced_misfit() -> Plan:
    return plan_of(**FULL_70B_ON_H100)


def test_a_forced_method_that_does_not_fit_is_not_recommended_and_says_so_in_numbers(forced_misfit):
    summary = forced_misfit.recommendation.summary
    assert forced_misfit.recommendation.method is None and forced_misfit.estimate.fits is False
    needs = re.match(r"--method full does not fit 79\.2 GiB per device on h100: full on llama-3\.1-70b needs "
                     r"([\d.]+) GiB per device even at its smallest \(gradient checkpointing, micro-batch 1", summary)
    assert needs and float(needs.group(1)) > 79.2


def test_it_names_the_methods_that_do_fit_with_the_alternatives_memory(forced_misfit):
    summary = forced_misfit.recommendation.summary
    assert "no other method fits either" not in summary and "Do not fine-tune" not in summary
    fitting = {alt.method: alt.peak_gib for alt in forced_misfit.alternatives
               if alt.fits and not alt.config.get("gpu") and not alt.config.get("model")}
    assert fitting
    for name, peak in fitting.items():
        assert f"{name} ({peak:.1f} GiB peak" in summary
    assert "Drop --method and the plan picks qlora (" in summary


def test_the_memory_warning_no_longer_says_no_method_fits(forced_misfit):
    assert not [warning for warning in forced_misfit.warnings if warning.startswith("No method fits")]
    fired = rationale(forced_misfit)
    assert "memory.nothing-fits" not in fired
    assert fired["memory.forced-misfit"].startswith("--method full does not fit 79 GiB per device (1 GPU) even after "
                                                    "every compromise, but other methods do: qlora (")
    no_placeholder_left(forced_misfit)


def test_the_alternatives_say_which_fit_where_the_forced_method_does_not(forced_misfit):
    qlora = next(alt for alt in forced_misfit.alternatives if alt.method == "qlora")
    assert qlora.why_not == "fits, where --method full does not"
    hardware = forced_misfit.alternatives[0]
    assert hardware.method == "full" and hardware.why_not.startswith("needs other hardware: fits on ")


def test_a_forced_method_where_no_other_fits_either_still_says_nothing_fits():
    plan = plan_of(examples=5000, model="llama-3.1-70b", gpu="t4", method="qlora")
    assert plan.recommendation.summary.startswith("Nothing fits 14.6 GiB per device on t4: qlora on llama-3.1-70b")
    assert "no other method fits either" in plan.recommendation.summary
    assert "memory.nothing-fits" in rationale(plan) and "memory.forced-misfit" not in rationale(plan)


def test_the_cli_exits_1_and_says_why_on_stderr_under_json(capsys):
    code = main(["plan", "--examples", "5000", "--model", "llama-3.1-70b", "--gpu", "h100", "--method", "full",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 1 and json.loads(captured.out)["recommendation"]["method"] is None
    assert captured.err.startswith("no plan fits: --method full does not fit 79.2 GiB per device on h100")
    assert captured.err.count("\n") == 1


def test_the_text_never_prints_zero_hours(capsys):
    code = main(["plan", "--examples", "5000", "--model", "llama-3.1-70b", "--gpu", "h100", "--method", "full"])
    out = capsys.readouterr().out
    assert code == 1 and "--method full does not fit" in out
    assert not re.search(r"~0\.0+ h", out)


@pytest.mark.parametrize("hours, digits, text", [
    (2.0755, 2, "~2.08 h"), (0.66, 1, "~0.7 h"), (0.04, 1, "~2 min"), (0.037, 2, "~0.04 h"), (0.004, 2, "under a minute"),
    (0.0001, 1, "under a minute"),
])
def test_hours_that_round_to_zero_are_given_in_minutes(hours, digits, text):
    assert about_hours(hours, digits) == text


def test_hour_spans_and_sizes_read_as_a_person_writes_them():
    assert hours_span(1.94, 3.38) == "1.94-3.38 h" and hours_span(0.001, 0.05) == "0-3 min"
    assert (megabytes(84.0), megabytes(282214.8), megabytes(11288593.0)) == ("84.0 MB", "282.2 GB", "11.3 TB")


# -- defect 4: --seq-len above the model's context ---------------------------------------
def test_a_seq_len_above_the_context_is_capped_with_both_numbers_and_the_plan_agrees():
    plan = plan_of(examples=5000, seq_len=65536, model="qwen3-8b", gpu="h100")
    warning = next(w for w in plan.warnings if w.startswith("--seq-len 65536"))
    assert "qwen3-8b's context of 40960 tokens" in warning and warning.endswith("caps it at the model's context, 40960.")
    assert plan.training.hyperparameters.seq_len == plan.training.data.seq_len == 40960
    no_placeholder_left(plan)


def test_a_capped_length_that_still_does_not_fit_is_not_called_the_length_asked():
    plan = plan_of(examples=5000, seq_len=200000, model="llama-3.1-8b", gpu="h100")
    fired = rationale(plan)
    assert "131072 tokens" in fired["data.seq-len-above-context"]
    shorter = fired["memory.shorter-sequences"]
    assert shorter.startswith("Does not fit at the model's whole context (131072 tokens)")
    assert plan.training.hyperparameters.seq_len < 131072


def test_a_seq_len_within_the_context_gets_no_cap_warning():
    plan = plan_of(examples=5000, seq_len=4096, model="qwen3-8b", gpu="h100")
    assert "data.seq-len-above-context" not in rationale(plan)
    assert plan.training.hyperparameters.seq_len == 4096


# -- defect 10: a forced method against the person's other answers ------------------------
@pytest.fixture(scope="module")
def adapter_strict() -> Plan:
    return plan_of(task="instruction", examples=3000, method="adapter", latency="strict", model="qwen3-4b", gpu="a10g")


def test_a_forced_unmergeable_method_under_strict_latency_is_flagged(adapter_strict):
    fired = rationale(adapter_strict)
    warning = fired["risk.forced-added-latency"]
    assert warning.startswith("--method adapter goes against --latency strict: adapter cannot be merged")
    assert warning in adapter_strict.warnings
    lora = next(alt for alt in adapter_strict.alternatives if alt.method == "lora")
    assert warning.endswith(f"Drop --method and the plan picks lora ({lora.peak_gib:.1f} GiB peak per device).")
    assert "risk.added-latency" not in fired  # the forced-method warning says it, once
    no_placeholder_left(adapter_strict)


def test_under_method_the_rules_still_exclude_the_other_methods_they_would(adapter_strict):
    prompt_tuning = next(alt for alt in adapter_strict.alternatives if alt.method == "prompt_tuning")
    assert prompt_tuning.why_not.endswith("(method.strict-latency-soft-prompts)")
    assert next(alt for alt in adapter_strict.alternatives if alt.method == "lora").why_not == \
        "fits, but you passed --method adapter"


@pytest.mark.parametrize("overrides, absent", [
    (dict(method="lora", latency="strict"), "risk.forced-added-latency"),  # mergeable: nothing to flag
    (dict(method="adapter", latency="moderate"), "risk.forced-added-latency"),  # latency allowed
])
def test_the_latency_warning_fires_only_where_it_applies(overrides, absent):
    plan = plan_of(task="instruction", examples=3000, model="qwen3-4b", gpu="a10g", **overrides)
    assert absent not in rationale(plan)


def test_forced_full_fine_tuning_for_many_tasks_states_the_storage_and_the_forgetting():
    plan = plan_of(examples=3000, method="full", tasks=12, model="llama-3.2-1b", gpu="a100-80gb")
    storage = plan.estimate.storage
    warning = rationale(plan)["risk.forced-full-copies"]
    assert warning.startswith("--method full goes against --tasks 12: it stores a full copy of llama-3.2-1b")
    assert f"{megabytes(storage.per_task_mb)} each and {megabytes(storage.total_mb)} for the 12 tasks" in warning
    assert "Drop --method and the plan picks lora (" in warning and warning in plan.warnings
    assert "risk.forgetting-full" in rationale(plan)
    one_task = plan_of(examples=3000, method="full", model="llama-3.2-1b", gpu="a100-80gb")
    assert "risk.forced-full-copies" not in rationale(one_task)


# -- defect 13: a --batch-size that does not fit ------------------------------------------
@pytest.fixture(scope="module")
def batch_64_on_4090() -> Plan:
    return plan_of(examples=5000, batch_size=64, model="llama-3.1-8b", gpu="rtx4090")


def test_a_micro_batch_that_does_not_fit_is_reported_with_what_it_needs(batch_64_on_4090):
    hp = batch_64_on_4090.training.hyperparameters
    assert hp.batch_size < 64 and hp.batch_size * hp.gradient_accumulation_steps == 64
    warning = rationale(batch_64_on_4090)["memory.batch-size-cut"]
    needs = re.match(r"Micro-batch 64 \(your --batch-size\) does not fit: it needs ([\d.]+) GiB per device of 24 GiB",
                     warning)
    assert needs and float(needs.group(1)) > 24
    assert (f"The plan runs micro-batch {hp.batch_size} x {hp.gradient_accumulation_steps} accumulation steps, an "
            "effective batch of 64") in warning
    assert warning in batch_64_on_4090.warnings
    assert "memory.gradient-accumulation" not in rationale(batch_64_on_4090)  # the specific warning says it


def test_the_effective_batch_message_says_the_users_batch_is_above_the_usual_range(batch_64_on_4090):
    message = rationale(batch_64_on_4090)["training.effective-batch"]
    assert "Effective batch 64" in message and "the usual range is 4-32" in message
    assert "your --batch-size 64 per device sets it, above the usual range" in message
    no_placeholder_left(batch_64_on_4090)


def test_a_batch_size_that_fits_gets_no_cut_warning():
    plan = plan_of(examples=5000, batch_size=4, model="llama-3.1-8b", gpu="rtx4090")
    fired = rationale(plan)
    assert "memory.batch-size-cut" not in fired and "above the usual range" not in fired["training.effective-batch"]
