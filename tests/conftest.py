"""Shared test fixtures: seeded RNGs, one torch thread, a fresh DFKD_HOME per test,
and DFKD_DATA_DIR pointed at ../shared/data when it is there."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO.parent / "shared" / "data").resolve()


def shared_data_available() -> bool:
    return (SHARED_DATA / "README.md").exists()


needs_shared_data = pytest.mark.skipif(not shared_data_available(), reason="../shared/data is not beside the repo")


@pytest.fixture(scope="session")
def session_teacher_dir(tmp_path_factory) -> Path:
    """Teachers are keyed by dataset, split seed and architecture: one cache serves the session."""
    return tmp_path_factory.mktemp("teachers")


@pytest.fixture(autouse=True)
def clean_state(tmp_path, monkeypatch, session_teacher_dir):
    """Every test: seeded RNGs, one thread, its own DFKD_HOME; DFKD_DATA_DIR = ../shared/data if present."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    monkeypatch.setenv("DFKD_HOME", str(tmp_path / "dfkd-home"))
    monkeypatch.setenv("DFKD_TEACHER_DIR", str(session_teacher_dir))
    monkeypatch.delenv("DFKD_DEVICE", raising=False)
    monkeypatch.delenv("DFKD_TEACHER_HOSTS", raising=False)  # the HTTP teacher's default allow-list: loopback
    monkeypatch.setenv("DFKD_SERVER_EXPOSED", "")  # the app sets it when a test says the server is exposed
    if shared_data_available():
        monkeypatch.setenv("DFKD_DATA_DIR", str(SHARED_DATA))
    else:
        monkeypatch.setenv("DFKD_DATA_DIR", str(tmp_path / "empty-data"))
    yield


@pytest.fixture
def shared_data() -> Path:
    if not shared_data_available():
        pytest.skip("../shared/data is not beside the repo")
    return SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*.json from this run instead of comparing with them")


@pytest.fixture
def update_golden(request) -> bool:
    return bool(request.config.getoption("--update-golden"))
