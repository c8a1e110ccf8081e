"""Statistics, warnings, leakage and planner hints, on small files built here and on Banking77."""

import json

import pytest

from advisor.data import profile_hints, validate_file
from advisor.data.similarity import matches, near_duplicates, normalise_text

LONG = "Please send me the statement for last month because I need it for my tax return"


def jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def test_exact_and_near_duplicates_are_counted_with_their_lines(tmp_path):
    path = jsonl(tmp_path / "data.jsonl", [
        {"text": "Hello, World!"},              # 1
        {"text": "something else entirely"},    # 2
        {"text": "Hello, World!"},              # 3 exact duplicate of 1
        {"text": "hello world"},                # 4 same normalised text as 1: exact too
        {"text": LONG},                         # 5
        {"text": LONG.replace("last", "this")}, # 6 near-duplicate of 5
        {"text": "a third unrelated sentence"}, # 7
    ])
    stats = validate_file(path).stats
    assert stats.duplicates == 2
    assert [(p.first_line, p.line) for p in stats.duplicate_examples] == [(1, 3), (1, 4)]
    assert stats.near_duplicates == 1
    assert [(p.first_line, p.line) for p in stats.near_duplicate_examples] == [(5, 6)]


def test_exact_duplicates_within_a_file_are_what_leakage_calls_exact_between_two(tmp_path):
    records = [{"text": "Has my top up gone through?", "label": "a"}, {"text": "something else", "label": "b"},
               {"text": "has my top-up gone through", "label": "a"}]
    within = validate_file(jsonl(tmp_path / "all.jsonl", records)).stats
    first, second = jsonl(tmp_path / "first.jsonl", records[:2]), jsonl(tmp_path / "second.jsonl", records[2:])
    between = validate_file(first, against=second).stats.leakage
    assert within.duplicates == between.exact == 1


def test_conflicting_labels_list_each_label_with_its_lines(tmp_path):
    path = jsonl(tmp_path / "data.jsonl", [
        {"text": "Where is my card?", "label": "card_arrival"},
        {"text": "where is my card", "label": "lost_card"},
        {"text": "Where is my card?", "label": "card_arrival"},
        {"text": "Top up failed", "label": "top_up"},
    ])
    report = validate_file(path)
    assert report.stats.conflicting_labels == 1
    assert report.stats.conflicting_examples[0].labels == {"card_arrival": [1, 3], "lost_card": [2]}
    assert any("conflicting labels" in warning for warning in report.warnings)


def test_label_distribution_imbalance_and_label_warnings(tmp_path):
    rows = [{"text": f"common {i}", "label": "common"} for i in range(30)]
    rows += [{"text": f"rare {i}", "label": "Rare"} for i in range(2)] + [{"text": "odd one", "label": "rare "}]
    report = validate_file(jsonl(tmp_path / "data.jsonl", rows))
    assert report.stats.labels == {"common": 30, "Rare": 2, "rare ": 1}
    assert list(report.stats.labels) == ["common", "Rare", "rare "]
    assert report.stats.imbalance_ratio == 30.0
    text = "\n".join(report.warnings)
    assert "labels are imbalanced (ratio 30" in text
    assert "2 labels with fewer than 5 examples" in text
    assert "differ only in case or spacing" in text


def test_token_lengths_are_estimated_from_bytes_or_counted_by_the_tokenizer(tmp_path):
    path = jsonl(tmp_path / "data.jsonl", [{"text": "x" * 40}, {"text": "y" * 8}, {"text": "z" * 401}])
    estimated = validate_file(path, seq_len=10).stats
    assert estimated.token_lengths.method == "estimate"
    assert (estimated.token_lengths.p50, estimated.token_lengths.max) == (10, 101)
    assert estimated.truncated_at_seq_len == 1
    counted = validate_file(path, tokenizer=lambda text: len(text) // 8, seq_len=4).stats
    assert counted.token_lengths.method == "tokenizer"
    assert (counted.token_lengths.p50, counted.token_lengths.p95, counted.token_lengths.max) == (5, 50, 50)
    assert counted.truncated_at_seq_len == 2


def test_prompts_that_fill_the_sequence_leave_nothing_to_learn(tmp_path):
    path = jsonl(tmp_path / "data.jsonl", [
        {"instruction": "word " * 50, "input": "", "output": "short answer"},
        {"instruction": "Say hi.", "input": "", "output": "hi"},
    ])
    report = validate_file(path, seq_len=32)
    assert report.stats.nothing_to_learn_at_seq_len == 1
    assert any("no response to learn from" in warning for warning in report.warnings)


def test_leakage_against_a_test_file_is_reported(fixtures):
    report = validate_file(fixtures / "classification.csv", against=fixtures / "leak_test.jsonl")
    leak = report.stats.leakage
    assert (leak.against_records, leak.exact, leak.near) == (4, 2, 1)
    assert [(pair.first_line, pair.line) for pair in leak.examples] == [(2, 1), (5, 2), (9, 3)]
    assert any("3 of 4 records" in warning for warning in report.warnings)
    assert report.ok, "leakage is a warning, not a data error"


def test_no_leakage_against_a_disjoint_file(fixtures, tmp_path):
    other = jsonl(tmp_path / "other.jsonl", [{"text": "Completely different question about loans", "category": "loans"}])
    leak = validate_file(fixtures / "classification.csv", against=other).stats.leakage
    assert (leak.exact, leak.near) == (0, 0)


def test_near_duplicate_search_finds_close_texts_only():
    texts = [normalise_text(t) for t in (LONG, "an unrelated remark about the weather", LONG.replace("tax", "taxes"), "tiny")]
    assert near_duplicates(texts) == {2: 0}
    assert matches(texts[:2], [texts[2], "tiny", texts[1]]) == {0: 0, 2: 1}


def test_profile_hints_from_the_report(fixtures, tmp_path):
    assert profile_hints(validate_file(fixtures / "alpaca.jsonl")) == {"examples": 3, "task": "instruction", "quality": "high"}
    assert profile_hints(validate_file(fixtures / "text.jsonl"))["task"] == "domain-adaptation"
    mostly_broken = jsonl(tmp_path / "bad.jsonl", [{"text": "ok", "label": "a"}, {"text": ""}, {"label": "b"}])
    assert profile_hints(validate_file(mostly_broken)) == {"examples": 1, "task": "classification", "quality": "low"}


def test_banking77_validates_with_77_labels(banking77_train):
    report = validate_file(banking77_train)
    assert report.ok and report.format == "classification"
    assert report.mapping == {"text": "text", "label": "category"}
    assert report.records == 10003 and report.error_count == 0
    assert len(report.stats.labels) == 77
    assert report.stats.imbalance_ratio == pytest.approx(187 / 35, abs=0.01)
    assert profile_hints(report) == {"examples": 10003, "task": "classification", "quality": "medium"}
