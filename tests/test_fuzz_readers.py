"""The short, fixed-seed fuzz campaign (benchmarks/fuzz_readers.py) over mutated copies of real files of every
format: each case reads into a valid record or raises an ElvmassError naming the file in one line; nothing else,
no case over 5 s (each runs in a worker process under a timeout), worker memory bounded. The long campaign
(hundreds of cases per format) is the slow test and the benchmark itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_readers", REPO / "benchmarks" / "fuzz_readers.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

#: Bound on the worker's memory growth (MB) above what it inherited when forked (a test session already
#: holds torch and pandas, so the absolute resident set depends on test order): real files decode in ~110 MB.
MAX_GROWTH_MB = 400.0
#: the worker's hard memory limit handed to the campaign (its address space is capped at 4x this)
MAX_RSS_MB = 600.0


def _check(report):
    assert set(report["formats"]) == set(fuzz.SEEDS)
    for fmt, stats in report["formats"].items():
        assert stats["cases"] >= 5, fmt
        assert set(stats["exceptions"]) <= {"ECGReadError"}, (fmt, stats)
        assert stats["outcomes"].get("failure", 0) == 0, (fmt, stats)
    assert report["failures"] == []
    assert report["slowest_case"]["seconds"] < fuzz.TIMEOUT_S
    assert report["peak_worker_growth_mb"] < MAX_GROWTH_MB


def test_mutations_replay_exactly(shared_data):
    import random

    seeds = fuzz.seed_files(shared_data)
    for fmt, files in seeds.items():
        ops = fuzz.draw_case(files, random.Random(f"replay:{fmt}"))
        assert fuzz.apply_ops(files, ops) == fuzz.apply_ops(files, ops)
        assert fuzz.apply_ops(files, ops) != files or not ops


@pytest.mark.filterwarnings("ignore")
def test_short_fuzz_campaign_fixed_seed(shared_data):
    # fixed seed; under a per-format time cap so the default run stays short on a loaded machine
    report = fuzz.campaign(cases=60, seed=0, budget_s=3.0, data=shared_data, max_rss_mb=MAX_RSS_MB)
    _check(report)


@pytest.mark.slow
def test_long_fuzz_campaign(shared_data):
    report = fuzz.campaign(cases=300, seed=1, data=shared_data, max_rss_mb=MAX_RSS_MB)
    _check(report)
    assert all(s["cases"] == 300 for s in report["formats"].values())
