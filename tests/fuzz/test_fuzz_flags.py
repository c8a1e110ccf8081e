"""Hostile flag values for plan, estimate, validate and split: always exit 0/1/2 with one line, never a traceback."""

from __future__ import annotations


import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.cli.plan import FLAGS

from .contract import assert_contract, assert_unchanged, fingerprint, numbers, run_cli, words

FUZZ = settings(max_examples=40, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

PLAN_VALUED = [flag for flag, options in FLAGS.items() if options.get("action") != "store_true" and flag != "--data"]
NUMERIC = {"--examples", "--gpu-memory-gib", "--num-gpus", "--num-nodes", "--tasks", "--seq-len", "--batch-size", "--price-per-hour"}


def _value(flag: str):
    return numbers if flag in NUMERIC else st.one_of(words, numbers)


plan_flags = st.lists(st.sampled_from(PLAN_VALUED), unique=True, min_size=1, max_size=4).flatmap(
    lambda chosen: st.tuples(*(st.tuples(st.just(flag), _value(flag)) for flag in chosen)))


@FUZZ
@given(plan_flags)
def test_plan_flags(pairs):
    outcome = run_cli(["plan", "--json", *(f"{flag}={value}" for flag, value in pairs)])
    assert_contract(outcome)


ESTIMATE_NUMERIC = ["--batch-size", "--seq-len", "--gradient-accumulation-steps", "--lora-rank", "--num-virtual-tokens",
                    "--trainable-layers", "--num-labels", "--gpu-memory-gib", "--num-gpus", "--num-nodes", "--tasks", "--tokens",
                    "--price-per-hour"]


@FUZZ
@given(st.sampled_from(["lora", "qlora", "full", "freeze", "prefix", "prompt_tuning", "adapter", "ia3", "dora"]),
       st.lists(st.tuples(st.sampled_from(ESTIMATE_NUMERIC), numbers), max_size=3),
       st.lists(st.tuples(st.sampled_from(["r", "alpha", "dropout", "bottleneck", "num_virtual_tokens",
                                           "trainable_layers", "double_quant", "target_modules", "x"]),
                          st.one_of(numbers, words)), max_size=2),
       st.sampled_from([[], ["--gpu", "a10g"], ["--gpu", "cpu"], ["--gpu=💥"]]))
def test_estimate_flags(method, flags, sets, gpu):
    argv = ["estimate", "--model", "qwen2.5-0.5b", "--method", method, "--json", *gpu]
    argv += [f"{flag}={value}" for flag, value in flags]
    argv += [f"--set={key}={value}" for key, value in sets]
    assert_contract(run_cli(argv))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["--seq-len", "--max-listed", "--format", "--text-column",
                                           "--label-column", "--against"]), st.one_of(numbers, words)), max_size=3))
def test_validate_flags(tmp_path, flags):
    data = tmp_path / "data.csv"
    if not data.exists():
        data.write_text("text,label\nhello,a\nworld,b\nagain,a\n", encoding="utf-8")
    before = fingerprint(tmp_path)
    outcome = run_cli(["validate", str(data), "--json", *(f"{flag}={value}" for flag, value in flags)])
    assert_contract(outcome)
    assert_unchanged(before, tmp_path)


SPLIT_FLAGS = ["--validation-ratio", "--test-ratio", "--kfold", "--seed", "--stratify-by", "--group-by", "--format",
               "--text-column", "--label-column"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(SPLIT_FLAGS), st.one_of(numbers, words)), max_size=3), st.booleans())
def test_split_flags(tmp_path, flags, overwrite):
    data = tmp_path / "in" / "data.csv"
    if not data.exists():
        data.parent.mkdir()
        data.write_text("text,label,user\n" + "".join(f"row {i},{'ab'[i % 2]},u{i % 3}\n" for i in range(12)),
                        encoding="utf-8")
    before = fingerprint(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["split", str(data), "--out", str(out), "--json", *(f"{flag}={value}" for flag, value in flags)]
    outcome = run_cli(argv + (["--overwrite"] if overwrite else []))
    assert_contract(outcome)
    assert_unchanged(before, tmp_path / "in")


# -- the cases of issue 15, pinned ------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["plan", "--gpu-memory-gib", "inf"], "Input should be a finite number"),
    (["plan", "--gpu-memory-gib", "nan"], "Input should be a finite number"),
    (["plan", "--seq-len", "100000000000000000000"], "less than or equal to 1048576"),
    (["plan", "--batch-size", "99999999"], "less than or equal to 65536"),
    (["plan", "--examples", "1e20"], "invalid int value"),
    (["plan", "--price-per-hour", "Infinity"], "finite"),
    (["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--gpu", "a10g", "--gpu-memory-gib", "inf"],
     "expected a number > 0 and <= 10000"),
    (["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--set", "r=true"], "true/false"),
    (["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--set", "r=1e400"], "finite"),
    (["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--tokens", "1" + "0" * 30], "from 1 to"),
    (["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--set", "r=" + "[" * 5000], "nested more than"),
    (["estimate", "--model", "qwen2.5-0.5b", "--method", "lora", "--set", "r=" + "[" * 50 + "]" * 50],
     "invalid value"),
    (["estimate", "--model", "~nosuchuser", "--method", "lora"], "unknown model"),
    (["plan", "--model", "~nosuchuser/x"], "unknown model"),
    (["plan", "--profile", "/"], "not a regular file"),
    (["validate", "/", "--seq-len", "99999999999999999999"], "from 1 to 1048576"),
    (["validate", "/", "--max-listed", "-1"], "from 0 to"),
    (["split", "/", "--out", "o", "--kfold", "1000000000"], "from 2 to 100"),
    (["split", "/", "--out", "o", "--kfold", "inf"], "from 2 to 100"),
])
def test_issue_15_numbers_are_one_line(argv, message):
    outcome = run_cli(argv)
    assert_contract(outcome, codes=[2])
    assert message in outcome.err, str(outcome)


MODEL_CONFIGS = {
    "list": b"[]",
    "empty-object": b"{}",
    "utf16": '{"model_type": "llama"}'.encode("utf-16"),
    "latin1": '{"model_type": "llamé"}'.encode("latin-1"),
    "deep": ('{"model_type": ' + "[" * 100_000 + "]" * 100_000 + "}").encode(),
    "huge-layers": b'{"model_type": "llama", "num_hidden_layers": 1e300, "hidden_size": 64, "intermediate_size": 128,'
                   b' "num_attention_heads": 4, "vocab_size": 100}',
    "negative": b'{"model_type": "llama", "num_hidden_layers": -1, "hidden_size": 64, "intermediate_size": 128,'
                b' "num_attention_heads": 4, "vocab_size": 100}',
    "strings": b'{"model_type": "llama", "num_hidden_layers": "two", "hidden_size": 64, "intermediate_size": 128,'
               b' "num_attention_heads": 4, "vocab_size": 100}',
    "not-json": b"model_type: llama",
}


@pytest.mark.parametrize("name", sorted(MODEL_CONFIGS))
def test_a_local_model_directory_with_a_hostile_config(tmp_path, name):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_bytes(MODEL_CONFIGS[name])
    before = fingerprint(tmp_path)
    for argv in (["plan", "--model", str(tmp_path / "model"), "--json"],
                 ["estimate", "--model", str(tmp_path / "model"), "--method", "lora", "--json"]):
        assert_contract(run_cli(argv), codes=[2])
    assert_unchanged(before, tmp_path)


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999", "1.5", "nan"])
def test_split_seeds_outside_32_bits_are_one_line(tmp_path, seed):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(8)), encoding="utf-8")
    outcome = run_cli(["split", str(data), "--out", str(tmp_path / "out"), f"--seed={seed}"])
    assert_contract(outcome, codes=[2])
    assert "from 0 to 4294967295" in outcome.err
    assert not (tmp_path / "out").exists()


def test_the_largest_seed_splits(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"row {i},{'ab'[i % 2]}\n" for i in range(8)), encoding="utf-8")
    assert_contract(run_cli(["split", str(data), "--out", str(tmp_path / "out"), "--seed", "4294967295"]), codes=[0])


@pytest.mark.parametrize("where", ["missing/plan.json", "file/plan.json", "folder"])
def test_plan_out_that_cannot_be_written_is_one_line(tmp_path, where):
    (tmp_path / "file").write_text("mine", encoding="utf-8")
    (tmp_path / "folder").mkdir()
    before = fingerprint(tmp_path)
    outcome = run_cli(["plan", "--out", str(tmp_path / where)])
    assert_contract(outcome, codes=[2])
    assert_unchanged(before, tmp_path)
    assert fingerprint(tmp_path) == before


def test_plan_out_in_a_read_only_folder_is_one_line(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o555)
    outcome = run_cli(["plan", "--out", str(folder / "plan.json")])
    assert_contract(outcome, codes=[2])
    assert "cannot write" in outcome.err


EXECUTE_FLAGS = ["--max-steps", "--save-steps", "--backend", "--output-dir", "--data"]


@pytest.mark.slow  # execute imports torch before it looks at the plan's recommendation
@FUZZ
@given(st.lists(st.tuples(st.sampled_from(EXECUTE_FLAGS), st.one_of(numbers, words)), max_size=3),
       st.lists(st.sampled_from(["--dry-run", "--no-probe", "--json", "--resume", "--overwrite"]), unique=True))
def test_execute_flags(tmp_path, flags, switches):
    """A plan with nothing to train: every run ends in exit 1 (nothing to train) or 2 (bad flags), files intact."""
    from advisor.models import Plan, Profile, Recommendation

    plan = tmp_path / "plan.json"
    data = tmp_path / "data.jsonl"
    if not plan.exists():
        plan.write_text(Plan(profile=Profile(), recommendation=Recommendation(approach="prompting", summary="x"))
                        .model_dump_json(), encoding="utf-8")
        data.write_text('{"text": "hi", "label": "a"}\n{"text": "yo", "label": "b"}\n', encoding="utf-8")
    before = fingerprint(tmp_path)
    argv = ["execute", str(plan), "--data", str(data), "--output-dir", str(tmp_path / "run"), *switches]
    outcome = run_cli(argv + [f"{flag}={value}" for flag, value in flags])
    assert_contract(outcome, codes=[1, 2])
    assert_unchanged(before, tmp_path)


LONG = "a" * 5000


@pytest.mark.parametrize("argv", [
    ["plan", "--model", LONG], ["validate", LONG + ".csv"], ["plan", "--profile", LONG + ".json"],
    ["split", "data.csv", "--out", LONG], ["plan", "--out", LONG], ["estimate", "--model", LONG, "--method", "lora"],
    ["plan", "--data", LONG + ".csv"], ["validate", "data.csv", "--against", LONG + ".csv"],
])
def test_names_too_long_for_the_file_system_are_one_line(tmp_path, argv):
    (tmp_path / "data.csv").write_text("text,label\n" + "".join(f"r{i},{'ab'[i % 2]}\n" for i in range(8)),
                                       encoding="utf-8")
    outcome = run_cli(argv)
    assert_contract(outcome, codes=[2])
    assert len(outcome.err) < 2100
