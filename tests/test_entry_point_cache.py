"""The entry-point cache: it answers as importlib.metadata does, and an install or removal is never missed."""

import marshal

import pytest

from advisor import entry_point_cache
from advisor.entry_point_cache import installed


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache file of this test's own, which may be written."""
    monkeypatch.setattr(entry_point_cache, "CACHE", tmp_path / "cache" / "entry_points.marshal")
    monkeypatch.setattr("sys.dont_write_bytecode", False)
    return entry_point_cache.CACHE


def _distribution(site, name: str, module: str) -> None:
    """An installed distribution (a .dist-info directory) with one `advisor` entry point."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[advisor]\n{name} = {module}\n", encoding="utf-8")


def _listed(group: str = "advisor") -> list[tuple[str, str, str, str]]:
    return sorted((item.point.name, item.point.value, item.package, item.version) for item in installed(group))


def test_answers_as_importlib_metadata_and_from_the_cache_the_same(cache, monkeypatch):
    first = _listed()
    assert ("lora", "advisor.plugins.lora", "advisor", first[0][3]) in first  # the built-ins' own distribution
    assert cache.is_file()
    monkeypatch.setattr(entry_point_cache, "listed", lambda group: pytest.fail("listed again"))
    assert _listed() == first


def test_an_install_and_a_removal_are_seen(cache, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = _listed()
    _distribution(site, "advisor-extra-method", "extra_method.plugin")  # changes the directory's mtime
    after = _listed()
    assert set(after) - set(before) == {("advisor-extra-method", "extra_method.plugin", "advisor-extra-method", "1.0")}
    for path in sorted((site / "advisor-extra-method-1.0.dist-info").iterdir()):
        path.unlink()
    (site / "advisor-extra-method-1.0.dist-info").rmdir()
    assert _listed() == before


def test_a_damaged_cache_is_listed_again_and_none_written_without_bytecode(cache, monkeypatch):
    cache.parent.mkdir()
    cache.write_bytes(b"not marshal at all")
    assert _listed()  # listed, not an error
    assert [key[0] for key in marshal.loads(cache.read_bytes())] == ["advisor"]
    cache.unlink()
    monkeypatch.setattr("sys.dont_write_bytecode", True)
    assert _listed()
    assert not cache.exists()


def test_a_remembered_entry_point_loads_what_importlib_metadata_would():
    from importlib.metadata import EntryPoint

    for value in ("json", "json:dumps", "json:decoder.JSONDecoder", "json:decoder.JSONDecoder [extra]"):
        assert entry_point_cache.Remembered("name", value, "group").load() is EntryPoint("name", value, "group").load()
