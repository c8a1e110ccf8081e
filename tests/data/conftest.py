"""Paths for the dataset-toolkit tests: fixture files here, and the shared real datasets beside the repo."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
#: The CI clone has shared/ beside the repository: ../shared relative to the repo root.
SHARED_DATA = Path(__file__).parents[2].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"shared dataset {path} is absent (expected ../shared beside the repository)")
    return path


@pytest.fixture
def banking77_train() -> Path:
    return shared_file("banking77/train.csv")


@pytest.fixture(scope="session")
def banking77_loaded():
    """Banking77's train.csv, loaded once for the tests that only read it."""
    from advisor.data import load_records

    return load_records(shared_file("banking77/train.csv"))


@pytest.fixture
def seed_tasks() -> Path:
    return shared_file("alpaca-seed-tasks/seed_tasks.jsonl")


@pytest.fixture
def fixtures() -> Path:
    """The directory of good input files (broken ones are built inside the tests)."""
    return FIXTURES
