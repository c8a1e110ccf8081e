"""The knowledge base is tested as data: ids, citations, and facts the rules name."""

import re
from pathlib import Path

import pytest

from advisor import rules
from advisor.knowledge_base import read_toml

#: ../shared/seeds beside the main checkout (parents[2]) or beside a worktree's parent (parents[3]).
SEEDS = next((path for path in (Path(__file__).resolve().parents[level] / "shared" / "seeds" for level in (2, 3))
              if path.is_dir()), Path("/nonexistent"))


def test_rules_load_with_unique_ids_and_known_stages():
    loaded = rules.all_rules()
    ids = [rule.id for rule in loaded]
    assert len(ids) == len(set(ids))
    assert {rule.stage for rule in loaded} == {"approach", "method", "memory", "training", "data", "risk"}


def test_every_rule_cites_a_section_listed_for_its_document_or_a_reference():
    documents = rules.documents()
    for rule in rules.all_rules():
        if rule.source.startswith(rules.REFERENCE_PREFIX):
            assert rule.source[len(rules.REFERENCE_PREFIX):] in rules.references(), rule.id
            continue
        file, headings = rules.parse_source(rule.source)
        assert file in documents, rule.id
        assert headings and all(heading in documents[file] for heading in headings), rule.id


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside this checkout")
def test_sources_toml_matches_the_seed_documents():
    for document in read_toml("sources.toml")["document"]:
        text = (SEEDS / document["file"]).read_text(encoding="utf-8")
        headings = {re.sub(r"\*\*", "", m).strip() for m in re.findall(r"^#{1,4} (.+)$", text, flags=re.M)}
        missing = [h for h in document["headings"] if h not in headings]
        assert not missing, f"{document['file']}: {missing}"


def test_loader_refuses_unknown_fact_and_bad_citation(tmp_path):
    with pytest.raises(ValueError, match="unknown fact"):
        rules.Rule.model_validate({"id": "x.y", "stage": "data", "when": {"exampels": 3},
                                   "message": "m", "source": "s"})
    bad = rules.Rule.model_validate({"id": "x.y", "stage": "data", "message": "m",
                                     "source": "002_cb6d472d11844b9e.txt § No Such Section"})
    with pytest.raises(RuntimeError, match="has no section 'No Such Section'"):
        rules.check_source(bad, "rules/test.toml")


def test_rule_refuses_unknown_key():
    with pytest.raises(ValueError, match="extra"):
        rules.Rule.model_validate({"id": "x.y", "stage": "data", "message": "m", "source": "s", "wen": {}})


def test_every_reference_is_cited_by_some_rule():
    cited = {rule.source[len(rules.REFERENCE_PREFIX):] for rule in rules.all_rules()
             if rule.source.startswith(rules.REFERENCE_PREFIX)}
    assert set(rules.references()) == cited


def test_loader_refuses_unknown_reference_and_bad_reference_rows():
    unknown = rules.Rule.model_validate({"id": "x.y", "stage": "data", "message": "m", "source": "ref:no-such-paper"})
    with pytest.raises(RuntimeError, match="no \\[\\[reference\\]\\] 'no-such-paper'"):
        rules.check_source(unknown, "rules/test.toml")
    with pytest.raises(ValueError, match="url"):
        rules.Reference.model_validate({"id": "a-b", "title": "A title", "url": "ftp://x", "supports": "what it says"})


def section_text(text: str, heading: str) -> str:
    """The seed text under `heading`, up to the next heading of the same or a higher level
    (a `#` comment inside a code block is not a heading)."""
    lines, fenced, headings = text.splitlines(), False, []
    for index, line in enumerate(lines):
        fenced ^= line.startswith("```")
        match = None if fenced else re.match(r"^(#{1,4}) (.+)$", line)
        if match:
            headings.append((index, len(match.group(1)), re.sub(r"\*\*", "", match.group(2)).strip()))
    for position, (index, level, name) in enumerate(headings):
        if name == heading:
            end = next((i for i, other, _ in headings[position + 1:] if other <= level), len(lines))
            return "\n".join(lines[index:end])
    raise AssertionError(f"no heading {heading!r}")


#: A rule about a mechanism may cite a seed section only if that section names the mechanism.
MECHANISMS = {
    "memory.gradient-checkpointing": r"checkpoint",
    "memory.8bit-optimizer": r"8-bit (adam|optim)",
    "memory.sharding": r"shard|fsdp|zero",
    "memory.shorter-sequences": r"truncat",
    "training.precision-cpu": r"\bcpu\b",
    "training.precision-bf16": r"bf16|bfloat16",
    "training.precision-full-mixed": r"mixed precision|fp32 master",
    "training.epochs-llm-sft": r"epoch",
    "training.encoder-rate": r"2e-5|bert",
    "training.small-data-dropout": r"dropout",
    "risk.keep-general-ability": r"replay|old task data",
    "data.kfold-rare-labels": r"k-fold|stratif",
}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds is not beside this checkout")
def test_mechanism_rules_cite_a_passage_that_names_the_mechanism():
    by_id = {rule.id: rule for rule in rules.all_rules()}
    for rule_id, pattern in MECHANISMS.items():
        rule = by_id[rule_id]
        if rule.source.startswith(rules.REFERENCE_PREFIX):
            continue
        file, headings = rules.parse_source(rule.source)
        text = section_text((SEEDS / file).read_text(encoding="utf-8"), headings[-1])
        assert re.search(pattern, text, flags=re.I), f"{rule_id} cites {rule.source}, which does not say it"
