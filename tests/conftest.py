"""Shared pytest fixtures.

Real test data lives outside the project, in ``../shared/data`` next to the repository
(PTB-XL v1.0.3 sample, genuine vendor exports; see that folder's README for sources and licences).
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the read-only real data folder ``../shared/data``.

    Its absence is a failure, not a skip: the real-data tests must never pass by not running.
    """
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}: clone the project next to shared/")
    return SHARED_DATA
