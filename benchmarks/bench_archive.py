"""Archive scoring speed and correctness: `elvmass predict ARCHIVE --out X.parquet` on a generated archive.

Run from the repository root::

    python benchmarks/bench_archive.py --model MODEL_DIR                      # 10,000 files
    python benchmarks/bench_archive.py --model MODEL_DIR --n-files 600 --muse-patients 60 --wfdb-patients 30

The archive: ``elvmass synth`` cohorts in GE MUSE XML and in WFDB (``--format wfdb``), then copies of the
MUSE files with a changed PatientID (distinct content, the same waveform) until ``--n-files``, and 1 %
corrupt copies (truncated, broken base64, garbage) mixed into the folders. Then, each with the CLI as a
user runs it:

1. the peer, measured in the same run: today's path (``predict_files``: the general reader and one model
   call per file) on a sample of MUSE files, and reading alone with the general and with the fast reader;
2. the archive with ``--workers 1`` and ``--workers 2``: files/s over the whole run (cluster start-up
   included) and between the first and the last Parquet part (steady state);
3. a ``--workers 2`` run killed (SIGKILL to its process group: driver and Dask workers) once half its
   parts are written, then restarted with ``--resume``.

After every run: every good file has a prediction, every corrupt copy an error row, one row per file.
Everything runs on this machine; the archive is made in a temporary folder (or ``--work``) and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, env, timeout=None) -> dict:
    res = subprocess.run([sys.executable, "-m", "elvmass", *args], env=env, capture_output=True, text=True,
                         timeout=timeout)
    if res.returncode != 0:
        raise SystemExit(f"elvmass {' '.join(args[:2])} failed: {res.stderr.strip()[-400:]}")
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def build_archive(root: Path, *, n_files: int, muse_patients: int, wfdb_patients: int, seed: int, env) -> dict:
    gen = root / "_gen"
    _cli("synth", "--n", str(muse_patients), "--seed", str(seed), "--out", str(gen / "muse"), "--json", env=env)
    _cli("synth", "--n", str(wfdb_patients), "--seed", str(seed + 1), "--format", "wfdb", "--out", str(gen / "wfdb"),
         "--json", env=env)
    arc = root / "archive"
    muse = sorted((gen / "muse" / "ecgs").rglob("*.xml"))
    wfdb = sorted((gen / "wfdb" / "ecgs").rglob("*.hea"))
    (arc / "wfdb").mkdir(parents=True)
    for h in wfdb:
        for src in (h, h.with_suffix(".dat")):
            shutil.copy(src, arc / "wfdb" / src.name)
    n_corrupt = max(1, round(n_files / 100))
    n_muse = max(0, n_files - len(wfdb) - n_corrupt)
    rng = random.Random(seed)
    good_muse = []
    for i in range(n_muse):
        src = muse[i % len(muse)]
        folder = arc / f"{2015 + i % 8}" / f"{i // 1000:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        if i >= len(muse):  # a copy: another patient ID, so another content hash
            data = data.replace(b"<PatientID>", f"<PatientID>C{i:06d}-".encode(), 1)
        dst = folder / f"{src.stem}_{i:06d}.xml"
        dst.write_bytes(data)
        good_muse.append(dst)
    corrupt = []
    for k in range(n_corrupt):
        src = rng.choice(good_muse)
        data = src.read_bytes()
        kind = k % 3
        if kind == 0:
            data = data[: len(data) // 2]
        elif kind == 1:
            data = data.replace(b"<WaveFormData>", b"<WaveFormData>@@", 1)
        else:
            data = bytes(rng.getrandbits(8) for _ in range(4096))
        dst = src.parent / f"corrupt_{k:04d}.xml"
        dst.write_bytes(data)
        corrupt.append(dst)
    shutil.rmtree(gen)
    rel = lambda ps: {str(p.relative_to(arc)) for p in ps}  # noqa: E731
    return {"root": arc, "good": rel(good_muse) | {f"wfdb/{h.name}" for h in wfdb},
            "corrupt": rel(corrupt)}


def check(out: Path, archive: dict) -> dict:
    import pandas as pd

    parts = sorted(out.glob("part-*.parquet"))
    raw = pd.concat([pd.read_parquet(p) for p in parts]) if parts else pd.DataFrame(columns=["path", "error", "lvm_g"])
    paths = set(raw["path"])
    good_ok = raw[raw["path"].isin(archive["good"])]
    bad = raw[raw["path"].isin(archive["corrupt"])]
    return {
        "rows": len(raw), "files": len(archive["good"]) + len(archive["corrupt"]),
        "one_row_per_file": bool(raw["path"].is_unique and paths == archive["good"] | archive["corrupt"]),
        "good_scored": int(good_ok["error"].isna().sum()), "good_files": len(archive["good"]),
        "corrupt_error_rows": int(bad["error"].notna().sum()), "corrupt_files": len(archive["corrupt"]),
        "good_with_error": sorted(good_ok.loc[good_ok["error"].notna(), "path"].head(3)),
    }


def steady_rate(out: Path) -> float | None:
    import pandas as pd

    parts = sorted(out.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    if len(parts) < 3:
        return None
    n = sum(len(pd.read_parquet(p, columns=["path"])) for p in parts[1:])
    dt = parts[-1].stat().st_mtime - parts[0].stat().st_mtime
    return round(n / dt, 2) if dt > 0 else None


def peer(model: Path, archive: dict, n: int) -> dict:
    from elvmass.bundle import load_bundle
    from elvmass.io.muse_fast import read_muse_fast
    from elvmass.io.vendor import read_vendor_ecg
    from elvmass.predict import predict_files

    root = archive["root"]
    sample = sorted(p for p in archive["good"] if p.endswith(".xml"))[:n]
    paths = [root / p for p in sample]
    bundle = load_bundle(model)
    t0 = time.perf_counter()
    for p in paths:
        read_vendor_ecg(p, "ge_muse_xml")
    t1 = time.perf_counter()
    for p in paths:
        read_muse_fast(p)
    t2 = time.perf_counter()
    predict_files(bundle, paths)
    t3 = time.perf_counter()
    return {"sample_files": len(paths), "read_general_files_per_s": round(len(paths) / (t1 - t0), 1),
            "read_fast_files_per_s": round(len(paths) / (t2 - t1), 1),
            "read_speedup": round((t1 - t0) / (t2 - t1), 2),
            "predict_files_files_per_s": round(len(paths) / (t3 - t2), 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--n-files", type=int, default=10_000)
    parser.add_argument("--muse-patients", type=int, default=300, help="synthetic patients in the MUSE cohort")
    parser.add_argument("--wfdb-patients", type=int, default=150, help="synthetic patients in the WFDB cohort")
    parser.add_argument("--chunk-size", type=int, default=200)
    parser.add_argument("--peer-files", type=int, default=100)
    parser.add_argument("--work", type=Path, default=None, help="folder for the archive (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    work = Path(tempfile.mkdtemp(prefix="elvmass-bench-archive-", dir=args.work))
    report: dict = {"cpus": os.cpu_count()}
    try:
        t0 = time.perf_counter()
        archive = build_archive(work, n_files=args.n_files, muse_patients=args.muse_patients,
                                wfdb_patients=args.wfdb_patients, seed=args.seed, env=env)
        report["archive"] = {"files": len(archive["good"]) + len(archive["corrupt"]), "corrupt": len(archive["corrupt"]),
                             "wfdb": sum(1 for p in archive["good"] if p.endswith(".hea")),
                             "built_s": round(time.perf_counter() - t0, 1)}
        print(f"archive: {report['archive']}", flush=True)
        report["peer"] = peer(args.model, archive, args.peer_files)
        print(f"peer (same run): {report['peer']}", flush=True)
        for workers in (1, 2):
            out = work / f"scores_w{workers}.parquet"
            info = _cli("predict", "--model", str(args.model), str(archive["root"]), "--out", str(out), "--workers",
                        str(workers), "--chunk-size", str(args.chunk_size), "--json", env=env)
            res = {"files_per_s": info.get("files_per_s"), "steady_files_per_s": steady_rate(out),
                   "elapsed_s": info.get("elapsed_s"), **check(out, archive), "load_avg_1min": os.getloadavg()[0]}
            report[f"workers_{workers}"] = res
            print(f"--workers {workers}: {res}", flush=True)
        out = work / "scores_killed.parquet"
        proc = subprocess.Popen([sys.executable, "-m", "elvmass", "predict", "--model", str(args.model),
                                 str(archive["root"]), "--out", str(out), "--workers", "2", "--chunk-size",
                                 str(args.chunk_size), "--json"], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        n_parts = -(-report["archive"]["files"] // args.chunk_size)
        while proc.poll() is None and len(list(out.glob("part-*.parquet"))) < max(1, n_parts // 2):
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        before = check(out, archive)["rows"]
        info = _cli("predict", "--model", str(args.model), str(archive["root"]), "--out", str(out), "--workers", "2",
                    "--chunk-size", str(args.chunk_size), "--resume", "--json", env=env)
        report["kill_and_resume"] = {"rows_when_killed": before, "resume": info, **check(out, archive)}
        print(f"killed at {before} rows, resumed: {report['kill_and_resume']}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = all(report[k]["one_row_per_file"] and report[k]["good_scored"] == report[k]["good_files"]
             and report[k]["corrupt_error_rows"] == report[k]["corrupt_files"]
             for k in ("workers_1", "workers_2", "kill_and_resume"))
    report["all_checks_pass"] = ok
    print(json.dumps(report, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
