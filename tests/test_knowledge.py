"""The knowledge base is tested as data: ids, citations, and facts the rules name."""

import re
from pathlib import Path

import pytest

from advisor import rules
from advisor.knowledge_base import read_toml

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"


def test_rules_load_with_unique_ids_and_known_stages():
    loaded = rules.all_rules()
    ids = [rule.id for rule in loaded]
    assert len(ids) == len(set(ids))
    assert {rule.stage for rule in loaded} == {"approach", "method", "memory", "training", "data", "risk"}


def test_every_rule_cites_a_section_listed_for_its_document():
    documents = rules.documents()
    for rule in rules.all_rules():
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
