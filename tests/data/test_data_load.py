"""Loading: format detection, column mapping, line numbers, and files that cannot be read at all."""

import json

import pytest

from advisor.data import load_records
from advisor.errors import UserError


@pytest.mark.parametrize(
    "name, format, mapping",
    [
        ("classification.csv", "classification", {"text": "text", "label": "category"}),
        ("intents.csv", "classification", {"text": "utterance", "label": "intent"}),
        ("wrapped.json", "classification", {"text": "sentence", "label": "label"}),
        ("alpaca.jsonl", "alpaca", {"instruction": "instruction", "input": "input", "output": "output"}),
        ("chat.jsonl", "chat", {"messages": "messages"}),
        ("sharegpt.json", "chat", {"messages": "conversations", "system": "system"}),
        ("text.jsonl", "text", {"text": "text"}),
    ],
)
def test_format_and_columns_are_detected(fixtures, name, format, mapping):
    loaded = load_records(fixtures / name)
    assert loaded.format == format
    assert loaded.mapping == mapping
    assert not loaded.errors


def test_csv_lines_count_the_header_and_multiline_fields(fixtures):
    loaded = load_records(fixtures / "classification.csv")
    assert loaded.lines == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12]
    assert loaded.records[4] == {"text": "I want to activate\nmy new card", "label": "activate_my_card"}
    assert loaded.columns == ["text", "category", "customer"]


def test_numeric_labels_are_kept_as_strings_and_json_lines_are_element_numbers(fixtures):
    loaded = load_records(fixtures / "wrapped.json")
    assert [record["label"] for record in loaded.records] == ["1", "0", "1"]
    assert loaded.lines == [1, 2, 3]


def test_sharegpt_maps_to_chat_messages_with_the_system_column_first(fixtures):
    loaded = load_records(fixtures / "sharegpt.json")
    assert loaded.records[0]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
    ]
    assert [m["role"] for m in loaded.records[1]["messages"]] == ["user", "assistant", "user", "assistant"]


def test_explicit_columns_override_detection(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("body,topic,label\nhello,greeting,x\nbye,farewell,y\n")
    loaded = load_records(path, text_column="body", label_column="topic")
    assert loaded.records == [{"text": "hello", "label": "greeting"}, {"text": "bye", "label": "farewell"}]
    as_text = load_records(path, format="text", text_column="body")
    assert as_text.records == [{"text": "hello"}, {"text": "bye"}]


def test_unknown_column_flag_names_the_columns(fixtures):
    with pytest.raises(UserError, match="--label-column 'categry' is not a column.*did you mean 'category'"):
        load_records(fixtures / "classification.csv", label_column="categry")


def test_undetectable_columns_say_what_is_expected(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1, "b": 2}\n')
    with pytest.raises(UserError, match=r"cannot tell the format .* columns \(a, b\).*--format"):
        load_records(path)


def test_forced_format_without_its_columns_is_refused(fixtures):
    with pytest.raises(UserError, match="chat data needs a messages or conversations column"):
        load_records(fixtures / "alpaca.jsonl", format="chat")


def test_seed_task_instances_become_one_alpaca_record_each(seed_tasks):
    loaded = load_records(seed_tasks)
    tasks = [json.loads(line) for line in seed_tasks.read_text().splitlines() if line.strip()]
    assert loaded.format == "alpaca"
    assert len(loaded.records) == sum(len(task["instances"]) for task in tasks)
    first_task, first_instance = tasks[1], tasks[1]["instances"][0]
    assert loaded.records[1] == {
        "instruction": first_task["instruction"], "input": first_instance["input"], "output": first_instance["output"],
    }
    assert loaded.lines[1] == 2
    assert loaded.originals[1]["instances"] == [first_instance]


def test_nested_instances_expand_with_the_task_line(tmp_path):
    path = tmp_path / "seeds.jsonl"
    task = {"instruction": "Classify the sentiment.", "instances": [{"input": "good", "output": "positive"},
                                                                    {"input": "bad", "output": "negative"}]}
    path.write_text(json.dumps({"instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}]}) + "\n" + json.dumps(task) + "\n")
    loaded = load_records(path)
    assert [record["output"] for record in loaded.records] == ["hi", "positive", "negative"]
    assert loaded.lines == [1, 2, 2]
    assert [original["instances"] for original in loaded.originals[1:]] == [[task["instances"][0]], [task["instances"][1]]]


def test_parquet_is_read_through_datasets(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    pq.write_table(pyarrow.table({"text": ["a b", "c d", "e f"], "label": ["x", "y", "x"]}), path)
    loaded = load_records(path)
    assert loaded.format == "classification"
    assert loaded.records[2] == {"text": "e f", "label": "x"}
    assert loaded.lines == [1, 2, 3]


def test_a_directory_loads_its_train_file(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "train row"}\n')
    (tmp_path / "test.jsonl").write_text('{"text": "test row"}\n')
    loaded = load_records(tmp_path)
    assert [record["text"] for record in loaded.records] == ["train row"]


def test_a_directory_without_train_loads_every_supported_file(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n')
    (tmp_path / "b.csv").write_text("text\ntwo\n")
    (tmp_path / "notes.txt").write_text("not data")
    loaded = load_records(tmp_path)
    assert [record["text"] for record in loaded.records] == ["one", "two"]


def test_a_json_file_holding_json_lines_is_read_as_lines(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('{"text": "one"}\n{"text": "two"}\n')
    assert load_records(path).lines == [1, 2]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.jsonl", None, "no such file or directory"),
        ("data.xlsx", b"whatever", "unknown extension '.xlsx'; accepted: .jsonl"),
        ("empty.jsonl", b"", "the file is empty"),
        ("blank.csv", b"\n\n  \n", "the file is empty"),
        ("utf16.jsonl", '{"text": "hi"}\n'.encode("utf-16"), "not UTF-8 text"),
        ("latin1.csv", "text\ncaf\xe9\nna\xefve\n".encode("latin-1")[5:], "not UTF-8 text"),
        ("broken.json", b'[{"text": "a"},', "invalid JSON at line 1"),
        ("object.json", b'{"rows": []}', r'expected a JSON array of records or \{"data": \[...\]\}, got rows'),
        ("header.csv", b"text,label\n", "holds no records"),
        ("empty_dir", "dir", "holds no .jsonl"),
    ],
)
def test_unreadable_inputs_are_user_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message) as caught:
        load_records(path)
    assert caught.value.exit_code == 2
