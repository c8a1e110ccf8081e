"""The TOML parse cache: a cached file reads as tomllib parses it, an edit is never missed, and the cache is
written only where Python may write bytecode."""

import marshal
import tomllib

import pytest

from advisor import toml_cache
from advisor.knowledge_base import knowledge_file, read_toml

tomllib_loads = tomllib.loads


@pytest.fixture
def fresh(monkeypatch):
    """No cache read yet in this process, and bytecode (so the cache) may be written."""
    monkeypatch.setattr(toml_cache, "_entries", {})
    monkeypatch.setattr("sys.dont_write_bytecode", False)


def test_a_cached_file_reads_as_parsed_and_an_edit_is_parsed_again(tmp_path, fresh, monkeypatch):
    (tmp_path / "rules").mkdir()
    file = tmp_path / "rules" / "a.toml"
    file.write_text('[[rule]]\nid = "a.one"\nweights = [1, 2.5]\n', encoding="utf-8")
    first = toml_cache.load(tmp_path, "rules/a.toml")
    assert toml_cache.cache_path(tmp_path).is_file()

    monkeypatch.setattr(toml_cache, "_entries", {})  # a new process: this time from the cache
    monkeypatch.setattr("tomllib.loads", lambda text: pytest.fail("a cached file was parsed again"))
    assert toml_cache.load(tmp_path, "rules/a.toml") == first == {"rule": [{"id": "a.one", "weights": [1, 2.5]}]}

    monkeypatch.setattr("tomllib.loads", tomllib_loads)
    monkeypatch.setattr(toml_cache, "_entries", {})
    file.write_text('[[rule]]\nid = "a.two"\nweights = [1, 2.5]\n', encoding="utf-8")  # same length, other bytes
    assert toml_cache.load(tmp_path, "rules/a.toml")["rule"][0]["id"] == "a.two"


def test_each_read_is_a_fresh_value(tmp_path, fresh):
    (tmp_path / "a.toml").write_text("names = ['x']\n", encoding="utf-8")
    toml_cache.load(tmp_path, "a.toml")["names"].append("y")
    assert toml_cache.load(tmp_path, "a.toml") == {"names": ["x"]}


def test_no_cache_is_written_without_bytecode_and_a_corrupt_one_is_ignored(tmp_path, fresh, monkeypatch):
    (tmp_path / "a.toml").write_text("n = 1\n", encoding="utf-8")
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    assert toml_cache.load(tmp_path, "a.toml") == {"n": 1}
    assert not toml_cache.cache_path(tmp_path).exists()

    toml_cache.cache_path(tmp_path).parent.mkdir(exist_ok=True)
    toml_cache.cache_path(tmp_path).write_bytes(marshal.dumps({"a.toml": "not an entry"}))
    monkeypatch.setattr(toml_cache, "_entries", {})
    assert toml_cache.load(tmp_path, "a.toml") == {"n": 1}
    toml_cache.cache_path(tmp_path).write_bytes(b"\x00garbage")
    monkeypatch.setattr(toml_cache, "_entries", {})
    assert toml_cache.load(tmp_path, "a.toml") == {"n": 1}


def test_a_broken_file_is_tomllibs_error(tmp_path, fresh):
    (tmp_path / "a.toml").write_text("n = \n", encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError):
        toml_cache.load(tmp_path, "a.toml")


def test_the_knowledge_base_reads_as_tomllib_parses_it():
    for name in ("models.toml", "gpus.toml", "sources.toml", "rules/40-training.toml"):
        with open(knowledge_file(name), "rb") as handle:
            assert read_toml(name) == tomllib.load(handle)
