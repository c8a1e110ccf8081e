"""Fuzz cases run in a scratch directory (relative paths land there) with the hub off."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _scratch_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
