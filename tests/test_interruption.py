"""Nothing lost: `synth`, `cohort build`, `predict --out`, `train` and `study` leave the complete previous output or
the complete new one when interrupted (SIGINT, SIGTERM at a random moment, several seeds) or when the disk fills
mid-way; never a partial file, a half-written folder or a temporary left behind.

Each command is run as a user runs it (a subprocess of ``python -m elvmass``): once with arguments A (the old
output, snapshotted), once to completion with arguments B (the new output, snapshotted), then the old output is
put back and the B run is repeated and interrupted after a random delay drawn from a seeded generator over the
length of the complete run. What is left must equal one of the two snapshots. Synthetic data is used: it shows
the outputs are written safely, nothing about patients."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from elvmass.atomic import atomic_dir, atomic_group, atomic_write_text
from elvmass.cli import app
from elvmass.errors import OutputError

REPO = Path(__file__).resolve().parents[1]


# --- the mechanism itself -----------------------------------------------------------------------------
def test_atomic_dir_keeps_the_old_folder_on_a_crash_and_swaps_on_success(tmp_path):
    out = tmp_path / "results"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("new, half")
            raise RuntimeError("crash mid-way")
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporary left
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    (out / "user_notes.txt").write_text("mine")
    with atomic_dir(out, keep_others=True) as tmp:
        (tmp / "b.txt").write_text("newer")
    assert (out / "b.txt").read_text() == "newer" and (out / "user_notes.txt").read_text() == "mine"


def test_atomic_dir_puts_back_a_folder_a_hard_kill_left_mid_swap(tmp_path):
    out = tmp_path / "bundle"
    hidden = tmp_path / ".bundle.old-abc123"  # what the two-rename fallback leaves if killed between renames
    hidden.mkdir()
    (hidden / "w.txt").write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_dir(out):
            raise RuntimeError("x")
    assert (out / "w.txt").read_text() == "previous" and not hidden.exists()


def test_atomic_group_lands_all_files_or_none(tmp_path):
    a, b = tmp_path / "m.csv", tmp_path / "m.flow.csv"
    atomic_write_text(a, "old a")
    atomic_write_text(b, "old b")
    with pytest.raises(KeyboardInterrupt):
        with atomic_group():
            atomic_write_text(a, "new a")
            assert a.read_text() == "old a"  # not moved yet
            raise KeyboardInterrupt
    assert (a.read_text(), b.read_text()) == ("old a", "old b")
    with atomic_group():
        atomic_write_text(a, "new a")
        atomic_write_text(b, "new b")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv", "m.flow.csv"]


def test_disk_full_is_one_error_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "p.csv"
    atomic_write_text(target, "old\n")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", full)
    from elvmass.atomic import atomic_write

    with pytest.raises(OutputError) as info:
        atomic_write(target, lambda tmp: pd.DataFrame({"a": [1]}).to_csv(tmp))
    assert str(info.value) == f"{target}: cannot write (no space left on device); the previous output is unchanged"
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["p.csv"]


# --- the commands, as a user runs them ----------------------------------------------------------------
def _snapshot(paths) -> dict[str, str]:
    """relative path -> sha256 of every file under the given files/folders (hidden temporaries included)."""
    out = {}
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for f in files:
            out[str(f.relative_to(root.parent))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _run(args, cwd, *, interrupt_after=None, sig=signal.SIGINT):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "PYTHONHASHSEED": "0", "COLUMNS": "120"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "elvmass", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if interrupt_after is not None:
        try:
            proc.wait(timeout=interrupt_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=900)
    return proc.returncode, stdout, stderr, time.perf_counter() - t0


def _restore(saved: Path, targets: list[Path]):
    for t in targets:
        if t.is_dir():
            shutil.rmtree(t)
        elif t.exists():
            t.unlink()
        src = saved / t.name
        if src.is_dir():
            shutil.copytree(src, t)
        elif src.exists():
            shutil.copy2(src, t)


def _check_interruptions(cwd: Path, targets: list[Path], args_a, args_b, seeds, *, same=None):
    """Run A, snapshot; run B, snapshot; then interrupt B at random moments: old or new, nothing else."""
    rc, _, err, _ = _run(args_a, cwd)
    assert rc == 0, err
    old = _snapshot(targets)
    saved = cwd / f"_saved_{targets[0].name}"
    saved.mkdir()
    for t in targets:
        (shutil.copytree if t.is_dir() else shutil.copy2)(t, saved / t.name)
    rc, _, err, full_s = _run(args_b, cwd)
    assert rc == 0, err
    new = _snapshot(targets)
    assert new != old
    outcomes = []
    parent_before = sorted(p.name for p in targets[0].parent.iterdir())
    for seed in seeds:
        _restore(saved, targets)
        rng = random.Random(seed)
        delay = rng.uniform(0.2, full_s * 1.05)
        sig = (signal.SIGINT, signal.SIGTERM)[seed % 2]
        rc, _, err, _ = _run(args_b, cwd, interrupt_after=delay, sig=sig)
        got = _snapshot(targets)
        same_as = "old" if got == old else "new" if (got == new if same is None else same(got, new)) else None
        assert same_as is not None, f"seed {seed}: {sig.name} after {delay:.1f} s left a mixed output (rc {rc}): {err[-400:]}"
        # a Ctrl-C that lands while Python is still importing elvmass prints Python's own KeyboardInterrupt
        # traceback (before any output is touched); any other traceback is a bug
        assert "Traceback" not in err or err.rstrip().endswith("KeyboardInterrupt"), err
        assert sorted(p.name for p in targets[0].parent.iterdir()) == parent_before, "a temporary was left"
        outcomes.append((seed, sig.name, round(delay, 1), same_as, rc))
    return outcomes


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A small synthetic cohort (24 patients) with its manifest, built as a user would."""
    root = tmp_path_factory.mktemp("interrupt")
    for args in (["synth", "--n", "24", "--seed", "1", "--out", "s", "--json"],
                 ["cohort", "build", "--ecg-dir", "s/ecgs", "--imaging", "s/imaging.csv", "--out", "m.csv", "--json"]):
        rc, _, err, _ = _run(args, root)
        assert rc == 0, err
    return root


def test_synth_interrupted_leaves_old_or_new(tmp_path):
    out = _check_interruptions(tmp_path, [tmp_path / "s"], ["synth", "--n", "6", "--seed", "1", "--out", "s", "--json"],
                               ["synth", "--n", "6", "--seed", "2", "--out", "s", "--json"], seeds=[0, 1, 2])
    print(out)


def test_cohort_build_interrupted_leaves_old_or_new(cohort):
    targets = [cohort / "m2.csv", cohort / "m2.flow.csv", cohort / "m2.excluded.csv"]
    common = ["cohort", "build", "--ecg-dir", "s/ecgs", "--imaging", "s/imaging.csv", "--out", "m2.csv", "--json"]
    out = _check_interruptions(cohort, targets, common + ["--window-days", "1"], common, seeds=[0, 1, 2])
    print(out)


def _bundle_same(got, new):
    return sorted(got) == sorted(new)  # weights are deterministic; bundle.json holds an elapsed time


@pytest.mark.slow
def test_train_and_predict_interrupted_leave_old_or_new(cohort):
    args = ["train", "--cohort", "m.csv", "--out", "b", "--preset", "quick", "--quiet", "--no-sex-specific"]
    out = _check_interruptions(cohort, [cohort / "b"], args + ["--seed", "1"], args + ["--seed", "2"], seeds=[0, 1, 2],
                               same=_bundle_same)
    from elvmass.bundle import load_bundle

    load_bundle(cohort / "b")  # whatever was left loads and its hashes check out
    print(out)
    rc, _, err, _ = _run(["train", "--cohort", "m.csv", "--out", "b", "--preset", "quick", "--quiet", "--no-sex-specific"], cohort)
    from elvmass import analyze_ecg, read_ecg

    signal = load_bundle(cohort / "b").signal_config
    files = sorted(str(p.relative_to(cohort)) for p in (cohort / "s" / "ecgs").glob("*.xml")
                   if analyze_ecg(read_ecg(p), signal).usable)  # predict refuses unusable ECGs (exit status 1)
    out = _check_interruptions(cohort, [cohort / "p.csv"], ["predict", *files[:2], "--model", "b", "--out", "p.csv", "--json"],
                               ["predict", *files[:6], "--model", "b", "--out", "p.csv", "--json"], seeds=[0, 1, 2])
    print(out)


def _study_same(got, new):
    return sorted(got) == sorted(new)  # results.json and the report hold elapsed times


@pytest.mark.slow
def test_study_interrupted_leaves_old_or_new(cohort):
    args = ["study", "--cohort", "m.csv", "--out", "st", "--preset", "quick", "--quiet", "--inputs", "ecg"]
    out = _check_interruptions(cohort, [cohort / "st"], args + ["--seed", "1"], args + ["--seed", "2"], seeds=[0, 1],
                               same=_study_same)
    json.loads((cohort / "st" / "results.json").read_text())
    print(out)


def test_disk_full_in_cli_commands_keeps_old_output(cohort, tmp_path, monkeypatch):
    """A writer that fails with ENOSPC mid-way: one error line, exit status non-zero, the old output intact."""
    runner = CliRunner()
    work = tmp_path / "w"
    shutil.copytree(cohort / "s", work / "s")
    monkeypatch.chdir(work)
    assert runner.invoke(app, ["cohort", "build", "--ecg-dir", "s/ecgs", "--imaging", "s/imaging.csv", "--out", "m.csv",
                               "--json"]).exit_code == 0
    synth_before = _snapshot([work / "s"])
    cohort_before = _snapshot([work / "m.csv", work / "m.flow.csv", work / "m.excluded.csv"])
    calls = {"n": 0}
    real_to_csv = pd.DataFrame.to_csv

    def fills_up(self, *args, **kwargs):  # the second CSV written hits a full disk
        calls["n"] += 1
        if calls["n"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_to_csv(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", fills_up)
    for args, before, targets in (
        (["cohort", "build", "--ecg-dir", "s/ecgs", "--imaging", "s/imaging.csv", "--out", "m.csv", "--window-days", "2"],
         cohort_before, [work / "m.csv", work / "m.flow.csv", work / "m.excluded.csv"]),
        (["synth", "--n", "3", "--seed", "9", "--out", "s"], synth_before, [work / "s"]),
    ):
        calls["n"] = 0
        result = runner.invoke(app, args)
        assert result.exit_code != 0, result.output
        lines = [ln for ln in result.output.splitlines() if ln.strip()]
        assert any("no space left on device" in ln for ln in lines), result.output
        assert "Traceback" not in result.output
        assert _snapshot(targets) == before, args[0]
        assert not [p for p in work.iterdir() if p.name.startswith(".")], "temporary left"
