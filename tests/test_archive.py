"""`elvmass predict ARCHIVE --out scores.parquet` on a local Dask cluster: generated MUSE files, the genuine
MUSE exports and a PTB-XL WFDB record in a folder tree with corrupt copies; one row per file, errors as rows,
and a run cut off part-way then resumed ends with exactly one row per file."""

from __future__ import annotations

import hashlib
import json
import shutil

import pandas as pd
import pytest
from typer.testing import CliRunner

from elvmass.archive import read_scores
from elvmass.cli import app


@pytest.fixture(scope="module")
def archive(trained_bundle, shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    gen = sorted((trained_bundle.parent / "synth" / "ecgs").glob("*.xml"))[:10]
    assert len(gen) == 10
    (root / "2019" / "a").mkdir(parents=True)
    (root / "2020").mkdir()
    for p in gen[:6]:
        shutil.copy(p, root / "2019" / "a" / p.name)
    for p in gen[6:]:
        shutil.copy(p, root / "2020" / p.name)
    for p in sorted((shared_data / "vendor" / "ge-muse-xml").glob("*.xml")):
        shutil.copy(p, root / p.name)
    from elvmass.io import example_ecg_path

    hea = example_ecg_path()  # PTB-XL record 136 (WFDB), shipped with elvmass
    for src in (hea, hea.with_suffix(".dat")):
        shutil.copy(src, root / src.name)
    raw = gen[0].read_bytes()
    (root / "2020" / "corrupt_truncated.xml").write_bytes(raw[: len(raw) // 3])
    (root / "2020" / "corrupt_b64.xml").write_bytes(raw.replace(b"<WaveFormData>", b"<WaveFormData>%%", 1))
    return root


def _run(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])


@pytest.mark.slow  # two local Dask clusters: ~30 s on a quiet machine, minutes under load
def test_archive_scoring_then_resume_after_a_cut(trained_bundle, archive, tmp_path):
    from elvmass.bundle import load_bundle
    from elvmass.io import find_ecg_files
    from elvmass.predict import predict_files

    files = find_ecg_files(archive)
    rels = sorted(str(p.relative_to(archive)) for p in files)
    out = tmp_path / "scores.parquet"
    info = _run(["predict", "--model", str(trained_bundle), str(archive), "--out", str(out), "--workers", "1",
                 "--chunk-size", "4", "--json"])
    df = read_scores(out)
    assert sorted(df["path"]) == rels
    bad = df[df["error"].notna()].set_index("path")
    corrupt = {"2020/corrupt_truncated.xml", "2020/corrupt_b64.xml"}
    assert info["files"] == len(files) and info["errors"] == len(bad) and info["scored"] == len(files) - len(bad)
    assert corrupt <= set(bad.index)
    assert all("corrupt" in e or "base64" in e.lower() for e in bad.loc[sorted(corrupt), "error"]), bad["error"].tolist()
    # the rest are ECGs every `predict` refuses (the synthetic cohort holds noisy ones on purpose): the same
    # refusal as `predict_files` gives them, one file at a time
    refused = sorted(set(bad.index) - corrupt)
    assert all(e.startswith("unusable for prediction (") for e in bad.loc[refused, "error"]), bad["error"].tolist()
    bundle = load_bundle(trained_bundle)
    _, refusals = predict_files(bundle, [archive / p for p in refused])
    assert len(refusals) == len(refused)
    assert bad["lvm_g"].isna().all()
    good = df[df["error"].isna()].set_index("path")
    # the same numbers as `predict_files`, one file at a time, and the hash of the bytes on disk
    preds, errors = predict_files(bundle, [archive / p for p in good.index])
    assert not errors
    for p, pred in zip(good.index, preds):
        assert good.loc[p, "lvm_g"] == pytest.approx(pred.to_dict()["lvm_g"], abs=0.051)
        assert good.loc[p, "model"] == pred.model
    muse = good.loc["muse_ecg2.xml"]
    assert muse["content_sha256"] == hashlib.sha256((archive / "muse_ecg2.xml").read_bytes()).hexdigest()
    assert muse["sex"] == "M" and muse["age_years"] == 60.0
    wfdb = good.loc["ptbxl_00136_hr.hea"]
    assert wfdb["format"] == "wfdb" and wfdb["age_years"] == 52.0  # PTB-XL: 52-year-old man

    # a run cut off part-way: only some parts were written (and a temporary of an unfinished one was left)
    parts = sorted(out.glob("part-*.parquet"))
    from elvmass.archive import split_chunks

    assert len(parts) == len(split_chunks(files, 4))  # a part per chunk (the last ones smaller)
    for p in parts[1::2]:
        p.unlink()
    (out / ".tmp-abc.parquet").write_bytes(b"half a file")
    kept = len(read_scores(out))
    # and a byte-identical copy of a scored file appeared under a new name: copied by hash, not rescored
    shutil.copy(archive / "muse_ecg1.xml", archive / "2020" / "muse_copy.xml")
    try:
        info2 = _run(["predict", "--model", str(trained_bundle), str(archive), "--out", str(out), "--workers", "1",
                      "--chunk-size", "4", "--resume", "--json"])
        df2 = read_scores(out)
        raw_rows = pd.concat([pd.read_parquet(p) for p in out.glob("part-*.parquet")])
    finally:
        (archive / "2020" / "muse_copy.xml").unlink()
    assert info2["skipped"] == kept and info2["files"] == len(files) + 1
    assert info2["copied"] + info2["scored"] + info2["errors"] == len(files) + 1 - kept
    assert len(raw_rows) == len(files) + 1 and raw_rows["path"].is_unique  # exactly one row per file
    assert sorted(df2["path"]) == sorted(rels + ["2020/muse_copy.xml"])
    merged = df2.set_index("path")
    assert merged.loc["2020/muse_copy.xml", "lvm_g"] == merged.loc["muse_ecg1.xml", "lvm_g"]
    assert merged.loc["2020/muse_copy.xml", "content_sha256"] == merged.loc["muse_ecg1.xml", "content_sha256"]


def test_archive_needs_a_folder_and_parquet(trained_bundle, archive, tmp_path):
    res = CliRunner().invoke(app, ["predict", "--model", str(trained_bundle), str(archive), "--workers", "1",
                                   "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 1 and "give --out NAME.parquet" in res.stderr
    out = tmp_path / "s.parquet"
    out.mkdir()
    (out / "part-x-00000.parquet").write_bytes(b"")
    res = CliRunner().invoke(app, ["predict", "--model", str(trained_bundle), str(archive), "--out", str(out)])
    assert res.exit_code == 1 and "--resume" in res.stderr


def test_a_bundle_the_workers_cannot_load_stops_the_run_with_one_line(trained_bundle, archive, tmp_path):
    """The driver only hash-checks the bundle (it never imports torch); a bundle whose hashes are right but
    whose models cannot be built (here: a network width that does not match its weights) is found by the
    first worker, and the run stops with that one line instead of writing an error row for every file."""
    from elvmass.bundle import CONFIG_NAME, HASHES_NAME, sha256_file

    bad = tmp_path / "bundle"
    shutil.copytree(trained_bundle, bad)
    config = json.loads((bad / CONFIG_NAME).read_text())
    for entry in config["models"].values():
        if entry.get("family") == "elvmassnet":
            entry["spec"]["net"]["channels"] = [c + 1 for c in entry["spec"]["net"]["channels"]]
    (bad / CONFIG_NAME).write_text(json.dumps(config))
    hashes = json.loads((bad / HASHES_NAME).read_text())
    hashes["files"][CONFIG_NAME] = sha256_file(bad / CONFIG_NAME)
    (bad / HASHES_NAME).write_text(json.dumps(hashes))
    out = tmp_path / "s.parquet"
    res = CliRunner().invoke(app, ["predict", "--model", str(bad), str(archive), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 1, res.output
    assert "cannot load model" in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not list(out.glob("part-*.parquet"))


@pytest.mark.parametrize("n_files, chunk_size", [(0, 200), (1, 200), (799, 200), (800, 200), (10_000, 200),
                                                 (10_037, 200), (9, 4), (9, 3), (5, 1)])
def test_chunks_cover_every_file_once_in_order_and_shrink_at_the_end(n_files, chunk_size):
    from elvmass.archive import TAIL_CHUNKS, split_chunks

    files = [f"f{i}.xml" for i in range(n_files)]
    chunks = split_chunks(files, chunk_size)
    assert [f for c in chunks for f in c] == files
    assert all(0 < len(c) <= chunk_size for c in chunks)
    small = max(1, chunk_size // 4)
    tail = TAIL_CHUNKS * chunk_size
    if n_files >= tail + chunk_size and small < chunk_size:  # full chunks, then only small ones at the end
        assert len(chunks[0]) == chunk_size
        assert all(len(c) == small for c in chunks[-(tail // small):])
