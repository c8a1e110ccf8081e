"""A corpus of broken files, built here: every bad record is found, at the right line, with what is wrong."""

import json

import pytest

from advisor.data import validate_file


def errors_by_line(report) -> dict[int, str]:
    return {error.line: error.message for error in report.errors}


def write_lines(path, lines: list) -> str:
    """Each item: a dict (dumped as JSON), a str (written as is) or bytes (raw, e.g. not UTF-8)."""
    data = b"".join((json.dumps(item).encode() if isinstance(item, dict) else item if isinstance(item, bytes) else item.encode()) + b"\n"
                    for item in lines)
    path.write_bytes(data)
    return str(path)


def test_broken_classification_jsonl(tmp_path):
    path = write_lines(tmp_path / "data.jsonl", [
        {"text": "fine", "label": "a"},                       # 1
        '{"text": "broken", "label": "a"',                    # 2 bad JSON
        {"text": "no label here"},                            # 3 label missing
        {"text": "", "label": "a"},                           # 4 empty text
        {"text": 42, "label": "a"},                           # 5 wrong type
        {"text": "list label", "label": ["a"]},               # 6 wrong type
        b'{"text": "caf\xe9", "label": "a"}',                 # 7 not UTF-8
        "[1, 2]",                                             # 8 not an object
        {"text": "numeric label", "label": 3},                # 9 fine: the label becomes "3"
        "",                                                   # 10 blank: skipped
        {"text": "   ", "label": "b"},                        # 11 blank text
    ])
    report = validate_file(path)
    assert not report.ok
    found = errors_by_line(report)
    assert sorted(found) == [2, 3, 4, 5, 6, 7, 8, 11]
    assert "invalid JSON" in found[2]
    assert found[3] == "missing field 'label'"
    assert found[4] == "'text' is empty"
    assert found[5] == "'text' must be a string, got number"
    assert found[6] == "'label' must be a string, got list"
    assert found[7].startswith("not valid UTF-8 (byte 0xe9")
    assert found[8] == "expected a JSON object, got list"
    assert found[11] == "'text' is empty"
    assert report.records == 10 and report.valid_records == 2 and report.error_count == 8
    assert report.stats.labels == {"3": 1, "a": 1}


def test_broken_csv_names_the_original_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(
        b"text,category\n"                 # 1
        b"fine,a\n"                        # 2
        b"only text\n"                     # 3 label missing (no field)
        b"empty label,\n"                  # 4 label empty
        b"a,b,c\n"                         # 5 too many fields
        b"caf\xe9,x\n"                     # 6 not UTF-8
        b'"two\nlines",b\n'                # 7-8 fine
        b"after the quote,\n"              # 9 label empty: counted after a multi-line field
        b'"never closed,b\n'               # 10 unbalanced quote
    )
    report = validate_file(path)
    found = errors_by_line(report)
    assert sorted(found) == [3, 4, 5, 6, 9, 10]
    assert found[3] == "missing field 'category'"
    assert found[4] == "'category' is empty"
    assert found[5].startswith("has 3 fields, the header has 2")
    assert found[6].startswith("not valid UTF-8")
    assert found[9] == "'category' is empty"
    assert "never closes" in found[10]
    assert report.valid_records == 2


def test_broken_alpaca(tmp_path):
    path = write_lines(tmp_path / "data.jsonl", [
        {"instruction": "Say hi.", "input": "", "output": "hi"},   # 1
        {"instruction": "Say hi.", "input": "", "output": ""},     # 2 empty output
        {"instruction": "Say hi.", "input": ""},                   # 3 output missing
        {"instruction": "Say hi.", "input": 5, "output": "hi"},    # 4 wrong type
        {"instruction": "", "output": "hi"},                       # 5 empty instruction
        {"instruction": "Say hi.", "input": None, "output": "x"},  # 6 fine: a null input means none
    ])
    found = errors_by_line(validate_file(path))
    assert found == {
        2: "'output' is empty",
        3: "missing field 'output'",
        4: "'input' must be a string, got number",
        5: "'instruction' is empty",
    }


def test_broken_seed_task_instances(tmp_path):
    path = write_lines(tmp_path / "seeds.jsonl", [
        {"instruction": "Add.", "instances": [{"input": "1+1", "output": "2"}]},                        # 1
        {"instruction": "Add.", "instances": []},                                                        # 2
        {"instruction": "Add.", "instances": [{"input": "2+2", "output": "4"}, {"input": "3+3"}]},      # 3 second lacks output
    ])
    report = validate_file(path)
    found = errors_by_line(report)
    assert found[2].startswith("'instances' must be a non-empty list")
    assert found[3] == "missing field 'instances[1].output'"
    assert report.valid_records == 2


def test_broken_chat(tmp_path):
    path = write_lines(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "hi", "name": "ann"}, {"role": "assistant", "content": "hello"}]},  # 1
        {"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "hello"}]},         # 2 unknown role
        {"messages": [{"role": "user", "content": "hi"}]},                                               # 3 no answer
        {"messages": "hello"},                                                                           # 4 not a list
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},        # 5 empty content
        {"messages": []},                                                                                # 6 empty
    ])
    found = errors_by_line(validate_file(path))
    assert sorted(found) == [2, 3, 4, 5, 6]
    assert found[2].startswith("unknown role 'bot' at 'messages[1].role'; accepted: system, user, assistant, tool")
    assert found[3] == "record has no assistant message: nothing to learn"
    assert found[4] == "'messages' must be a list of messages, got string"
    assert found[5] == "'messages[1].content' is empty"
    assert found[6] == "'messages' is empty"


def test_sharegpt_errors_name_from_and_value(tmp_path):
    path = write_lines(tmp_path / "sharegpt.jsonl", [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "beep"}]},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": 7}]},
    ])
    found = errors_by_line(validate_file(path))
    assert found[2].startswith("unknown role 'robot' at 'conversations[1].from'")
    assert found[3] == "'conversations[1].value' must be a string, got number"


def test_json_array_errors_use_element_numbers(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"text": "ok"}, "a string", {"text": ""}]))
    found = errors_by_line(validate_file(path))
    assert found == {2: "element 2 is not a JSON object (got string)", 3: "'text' is empty"}


def test_errors_are_capped_but_counted(tmp_path):
    rows = [{"text": "fine", "label": "a"}] + [{"text": f"row {i}"} for i in range(120)]
    report = validate_file(write_lines(tmp_path / "data.jsonl", rows), max_listed=50)
    assert report.error_count == 120
    assert len(report.errors) == 50
    assert report.errors[0].line == 2 and report.errors[-1].line == 51


@pytest.mark.parametrize("line", [1, 3])
def test_errors_in_a_directory_name_their_file(tmp_path, line):
    good = ['{"text": "x"}'] * 3
    bad = list(good)
    bad[line - 1] = '{"text": ""}'
    (tmp_path / "a.jsonl").write_text("\n".join(good) + "\n")
    (tmp_path / "b.jsonl").write_text("\n".join(bad) + "\n")
    report = validate_file(tmp_path)
    assert [(error.file, error.line) for error in report.errors] == [("b.jsonl", line)]

