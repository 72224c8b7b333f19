"""Benchmarks are checks: a missed target gives a non-zero exit status.

``benchmarks/bench_read.py`` is the cheapest to run: on a folder of 8 real PTB-XL records it times elvmass's
reader against its peer measured in the same run (``wfdb.rdrecord`` alone). An impossible ratio target
(10^9) must give exit status 1, a trivially met one (0) exit status 0, and a folder without WFDB records
(nothing to compare) 1. ``tests/test_training.py::test_bench_train_exits_non_zero_on_a_missed_target``
(slow) does the same for bench_train.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_data(shared_data, tmp_path_factory) -> Path:
    """``vendor/`` (empty) and ``ptbxl-sample/records500`` with the sample's first 8 records (copied)."""
    root = tmp_path_factory.mktemp("bench-data")
    (root / "vendor").mkdir()
    dest = root / "ptbxl-sample" / "records500" / "00000"
    dest.mkdir(parents=True)
    heads = sorted((shared_data / "ptbxl-sample" / "records500").rglob("*.hea"))[:8]
    assert len(heads) == 8
    for h in heads:
        for f in (h, h.with_suffix(".dat")):
            shutil.copy(f, dest / f.name)
    return root


def _bench_read(data: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_read.py"), "--data", str(data),
                           "--rounds", "1", *extra], env=env, capture_output=True, text=True, timeout=300)


def test_bench_read_exits_1_on_an_impossible_target_and_0_on_a_trivial_one(small_data):
    missed = _bench_read(small_data, "--min-wfdb-ratio", "1e9")
    assert missed.returncode == 1, missed.stdout + missed.stderr
    assert "target >= 1e+09x: MISSED" in missed.stdout
    met = _bench_read(small_data, "--min-wfdb-ratio", "0")
    assert met.returncode == 0, met.stdout + met.stderr
    assert "target >= 0x: met" in met.stdout
    # the table lists the 8 WFDB records it read
    assert any(line.split()[:2] == ["wfdb", "8"] for line in met.stdout.splitlines()), met.stdout


def test_bench_read_exits_1_when_the_peer_cannot_run(tmp_path):
    (tmp_path / "vendor").mkdir()
    (tmp_path / "ptbxl-sample" / "records500").mkdir(parents=True)
    res = _bench_read(tmp_path)
    assert res.returncode == 1
    assert "no ECG files" in res.stderr or "no WFDB records" in res.stderr
