"""Splits: stratified, grouped, k-fold, deterministic files and the manifest; on Banking77 and small fixtures."""

import hashlib
import json
from collections import Counter

import pytest

from advisor.data import load_records, split_records, write_split
from advisor.errors import UserError


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_files(directory) -> dict[str, str]:
    return {str(p.relative_to(directory)): sha256(p) for p in sorted(directory.rglob("*.jsonl"))}


def test_stratified_split_keeps_each_class_within_one_example(banking77_loaded):
    plan = split_records(banking77_loaded.rows(), validation_ratio=0.2, stratify_by="label", seed=42)
    train, validation = plan.splits["train"], plan.splits["validation"]
    assert sorted(train + validation) == list(range(10003))
    labels = [record["label"] for record in banking77_loaded.records]
    per_class = Counter(labels)
    in_validation = Counter(labels[i] for i in validation)
    assert len(per_class) == 77
    for label, count in per_class.items():
        assert abs(in_validation[label] - 0.2 * count) <= 1, label


def test_five_folds_put_every_row_in_validation_exactly_once(banking77_loaded):
    plan = split_records(banking77_loaded.rows(), stratify_by="category", kfold=5, seed=7)
    assert plan.strategy == "StratifiedKFold"
    assert len(plan.folds) == 5
    seen = Counter(i for fold in plan.folds for i in fold.validation)
    assert sorted(seen) == list(range(10003)) and set(seen.values()) == {1}
    for fold in plan.folds:
        assert not set(fold.train) & set(fold.validation)
        assert len(fold.train) + len(fold.validation) == 10003


def test_same_seed_same_bytes_and_another_seed_other_bytes(banking77_loaded, tmp_path):
    def write(seed, name):
        plan = split_records(banking77_loaded.rows(), stratify_by="label", seed=seed)
        write_split(banking77_loaded, plan, tmp_path / name)
        return data_files(tmp_path / name)

    first, again, other = write(42, "a"), write(42, "b"), write(43, "c")
    assert first == again
    assert set(first) == {"train.jsonl", "validation.jsonl"}
    assert first["train.jsonl"] != other["train.jsonl"]


def test_group_split_puts_no_group_on_both_sides(fixtures):
    loaded = load_records(fixtures / "classification.csv")
    customer = [row["customer"] for row in loaded.rows()]
    for seed in range(5):
        plan = split_records(loaded.rows(), validation_ratio=0.3, group_by="customer", seed=seed)
        train = {customer[i] for i in plan.splits["train"]}
        validation = {customer[i] for i in plan.splits["validation"]}
        assert train and validation and not train & validation
    folds = split_records(loaded.rows(), kfold=3, group_by="customer", stratify_by="label", seed=0).folds
    for fold in folds:
        assert not {customer[i] for i in fold.train} & {customer[i] for i in fold.validation}


def test_group_split_on_banking77_keeps_groups_whole(banking77_loaded):
    rows = [{**row, "conversation": str(i // 4)} for i, row in enumerate(banking77_loaded.rows())]
    plan = split_records(rows, validation_ratio=0.2, group_by="conversation", seed=1)
    groups = [row["conversation"] for row in rows]
    assert not {groups[i] for i in plan.splits["train"]} & {groups[i] for i in plan.splits["validation"]}


def test_three_way_split_is_disjoint_and_proportional(fixtures):
    rows = [{"text": f"t{i}", "label": "ab"[i % 2]} for i in range(100)]
    plan = split_records(rows, validation_ratio=0.2, test_ratio=0.1, stratify_by="label")
    sizes = {name: len(indices) for name, indices in plan.splits.items()}
    assert sizes == {"train": 70, "validation": 20, "test": 10}
    assert sorted(sum(plan.splits.values(), [])) == list(range(100))


def test_a_class_too_small_to_stratify_is_named_with_its_count():
    rows = [{"label": "big"}] * 10 + [{"label": "lonely"}]
    with pytest.raises(UserError, match=r"class 'lonely' has 1 example\(s\); a stratified validation split needs at least 2"):
        split_records(rows, stratify_by="label")
    with pytest.raises(UserError, match=r"class 'lonely' has 1 example\(s\); stratified --kfold 5 needs at least 5"):
        split_records(rows, stratify_by="label", kfold=5)


def test_a_validation_share_too_small_for_the_classes_says_what_would_work():
    rows = [{"label": str(i % 10)} for i in range(100)]
    with pytest.raises(UserError, match="gives 5 of 100 records but there are 10 classes.*between 0.1 and 0.9"):
        split_records(rows, validation_ratio=0.05, stratify_by="label")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"validation_ratio": 1.0}, "--validation-ratio must be in"),
        ({"validation_ratio": 0.5, "test_ratio": 0.5}, "leave room for training"),
        ({"kfold": 1}, "--kfold must be at least 2"),
        ({"group_by": "missing"}, "record 1 has no value for 'missing'"),
    ],
)
def test_bad_split_arguments_are_user_errors(options, message):
    rows = [{"text": str(i), "label": "ab"[i % 2]} for i in range(10)]
    with pytest.raises(UserError, match=message):
        split_records(rows, **options)


def test_manifest_counts_hashes_and_arguments(fixtures, tmp_path):
    loaded = load_records(fixtures / "classification.csv")
    plan = split_records(loaded.rows(), validation_ratio=0.3, stratify_by="label", seed=3)
    out = tmp_path / "split"
    manifest = write_split(loaded, plan, out, arguments={"seed": 3, "validation_ratio": 0.3})
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == json.loads(manifest.model_dump_json())
    assert on_disk["arguments"] == {"seed": 3, "validation_ratio": 0.3}
    assert on_disk["source"] == [{"path": str(fixtures / "classification.csv"), "sha256": sha256(fixtures / "classification.csv")}]
    for name in ("train", "validation"):
        entry = on_disk["splits"][name]
        assert entry["sha256"] == sha256(out / entry["file"])
        rows = [json.loads(line) for line in (out / entry["file"]).read_text().splitlines()]
        assert entry["records"] == len(rows)
        assert entry["labels"] == dict(Counter(row["category"] for row in rows))
    assert sum(on_disk["splits"][name]["records"] for name in ("train", "validation")) == 10


def test_output_rows_are_the_original_rows_with_sorted_keys(fixtures, tmp_path):
    loaded = load_records(fixtures / "classification.csv")
    write_split(loaded, split_records(loaded.rows(), validation_ratio=0.3), tmp_path / "out")
    lines = (tmp_path / "out" / "train.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert list(first) == ["category", "customer", "text"]
    assert first in loaded.originals
    assert lines[0] == json.dumps(first, sort_keys=True, ensure_ascii=False)


def test_kfold_writes_one_directory_per_fold(fixtures, tmp_path):
    loaded = load_records(fixtures / "alpaca.jsonl")
    manifest = write_split(loaded, split_records(loaded.rows(), kfold=3), tmp_path / "out")
    assert [fold.validation.records for fold in manifest.folds] == [1, 1, 1]
    assert data_files(tmp_path / "out").keys() == {f"fold-{n}/{part}.jsonl" for n in range(3) for part in ("train", "validation")}


def test_an_existing_directory_is_refused_unless_overwrite(fixtures, tmp_path):
    loaded = load_records(fixtures / "text.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    plan = split_records(loaded.rows(), validation_ratio=0.5)
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        write_split(loaded, plan, out)
    assert not (out / "train.jsonl").exists()
    write_split(loaded, split_records(loaded.rows(), kfold=2), out, overwrite=True)
    write_split(loaded, plan, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "train.jsonl", "validation.jsonl"]


def test_overwrite_refuses_a_directory_holding_files_no_split_wrote(fixtures, tmp_path):
    loaded = load_records(fixtures / "text.jsonl")
    out = tmp_path / "out"
    write_split(loaded, split_records(loaded.rows(), kfold=2), out)
    (out / "notes.txt").write_text("mine")
    (out / "test.jsonl").write_text('{"text": "my own test set"}\n')
    (out / "fold-7").mkdir()
    (out / "fold-7" / "train.jsonl").write_text("my own fold\n")
    with (out / "fold-0" / "train.jsonl").open("a") as handle:
        handle.write('{"text": "edited by hand"}\n')
    before = data_files(out) | {"notes.txt": sha256(out / "notes.txt")}
    with pytest.raises(UserError) as refused:
        write_split(loaded, split_records(loaded.rows(), validation_ratio=0.5), out, overwrite=True)
    message = refused.value.message
    assert "\n" not in message and "advisor did not write" in message
    for name in ("fold-0/train.jsonl", "fold-7/train.jsonl", "notes.txt", "test.jsonl"):
        assert f"'{name}'" in message
    assert "fold-1/train.jsonl" not in message
    assert data_files(out) | {"notes.txt": sha256(out / "notes.txt")} == before


def test_overwrite_refuses_a_directory_without_a_valid_split_manifest(fixtures, tmp_path):
    loaded = load_records(fixtures / "text.jsonl")
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"not": "ours"}')
    (out / "train.jsonl").write_text("precious\n")
    with pytest.raises(UserError, match="'manifest.json', 'train.jsonl'"):
        write_split(loaded, split_records(loaded.rows(), validation_ratio=0.5), out, overwrite=True)
    assert (out / "train.jsonl").read_text() == "precious\n"


def test_the_input_file_is_never_overwritten(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "one"}\n{"text": "two"}\n')
    before = data.read_bytes()
    loaded = load_records(data)
    with pytest.raises(UserError, match="is the input file"):
        write_split(loaded, split_records(loaded.rows(), validation_ratio=0.5), tmp_path, overwrite=True)
    assert data.read_bytes() == before


def test_the_input_inside_out_is_refused_even_when_a_split_wrote_it(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"row {n}"}) + "\n" for n in range(8)))
    loaded = load_records(data)
    out = tmp_path / "out"
    write_split(loaded, split_records(loaded.rows(), validation_ratio=0.5), out)
    before = data_files(out)
    again = load_records(out / "train.jsonl")
    with pytest.raises(UserError, match="is the input file"):
        write_split(again, split_records(again.rows(), validation_ratio=0.5), out, overwrite=True)
    assert data_files(out) == before
