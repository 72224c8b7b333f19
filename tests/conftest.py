"""Shared pytest fixtures.

Real test data lives outside the project, in ``../shared/data`` next to the repository
(PTB-XL v1.0.3 sample, genuine vendor exports; see that folder's README for sources and licences).
"""

from __future__ import annotations

import os

# OpenMP threads that wait by sleeping, not spinning: on a busy 2-core machine spinning threads made a
# 2-thread forward pass 6x slower than 1 thread (measured for issue 18). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# ELVMASS_SHARED_DATA overrides it for copies of the tree elsewhere (scripts/mutation runs them in mutants/)
SHARED_DATA = Path(os.environ.get("ELVMASS_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to the read-only real data folder ``../shared/data``.

    Its absence is a failure, not a skip: the real-data tests must never pass by not running.
    """
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}: clone the project next to shared/")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory) -> Path:
    """A model bundle trained by ``elvmass train --preset quick`` on a small built-in synthetic cohort
    (70 patients, seed 3), once per test session; shared by test_bundle, test_predict, test_archive,
    test_explain, test_comparators and test_muse_fast (before, test_bundle and test_predict each trained
    their own, near-identical one). Beside it: ``manifest.csv``, ``synth/`` and ``.elvmass-cache``.

    Numbers from it show that the pipeline works end to end, not that it is right about patients.
    ``ELVMASS_TEST_BUNDLE=path`` uses an existing bundle instead (quicker while developing).
    """
    import os

    if os.environ.get("ELVMASS_TEST_BUNDLE"):
        return Path(os.environ["ELVMASS_TEST_BUNDLE"])
    from typer.testing import CliRunner

    from elvmass.cli import app
    from elvmass.cohort import build_cohort, write_manifest
    from elvmass.synth import SynthConfig, generate_cohort

    root = tmp_path_factory.mktemp("bundle")
    synth = generate_cohort(SynthConfig(n=70, seed=3), root / "synth")
    manifest = write_manifest(build_cohort(synth.ecg_dir, synth.imaging_csv).manifest, root / "manifest.csv")
    res = CliRunner().invoke(app, ["train", "--cohort", str(manifest), "--out", str(root / "model"), "--preset", "quick",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    return root / "model"
