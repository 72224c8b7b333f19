"""Where the time of `elvmass predict` goes, per file: read, filter, peaks, beat, quality, fiducials, model.

Run from the repository root::

    python benchmarks/bench_predict_path.py --model MODEL_DIR --files DIR_OF_MUSE_XML [--n 100]

Profiles :func:`elvmass.predict.predict_files` (one model call per file, as ``elvmass predict`` does) with
cProfile and reports the cumulative ms per file of each stage, then the model alone per file at batch
sizes 1, 8 and 64 with torch on 1 thread and on torch's default thread count, and the two MUSE readers.
Profiling inflates Python-heavy stages a little; the shares are what to read.

``--archive`` instead splits the archive path (:func:`elvmass.archive.score_chunk`: fast reader, signal
pipeline, NumPy scalars, one model call per chunk) into CPU milliseconds per file without a profiler: each
stage function is wrapped by a CPU-time counter. It states the budget for the issue's target (300 GE MUSE
files/s on 2 cores is 6.7 CPU-ms per file) and the ceiling this machine's CPU time allows; with ``--archive``
the exit status is 1 when the whole chunk's CPU-ms per file exceeds ``--budget-ms`` (default that 6.7 ms;
the README reports it missed). It then runs the same chunk in one process alone and in two processes at
once (``side_by_side``: the slowdown and the files/s two cores give for this work before any Dask, driver or
start-up cost). The profiling mode is a measurement with no target (exit 0).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

STAGES = {
    "read (fast MUSE path)": "read_muse_fast",
    "assemble record": "assemble_record",
    "band-pass filter": "bandpass_filter",
    "R peaks": "_peaks_on_combined",
    "choose beat": "_choose_beat",
    "quality flags": "assess_quality",
    "model view": "view_from_filtered",
    "median beat": "median_template",
    "fiducials": "locate_fiducials",
    "measurements": "measure_beat",
    "voltage criteria": "voltage_criteria",
    "scalers/imputation": "transform",
    "model (batch 1)": "run",
    "analyze_ecg (all signal)": "analyze_ecg",
    "predict_record (all)": "predict_record",
}


#: the archive path's stages: (label, module, function looked up there at call time); "read" and "signal"
#: are totals, the rows under them their parts
ARCHIVE_STAGES = (
    ("read", "elvmass.io", "read_ecg"),
    ("read / XML guard (entities, DOCTYPE)", "elvmass.io.guard", "check_xml_bytes"),
    ("read / fast MUSE reader (parse, base64, assemble)", "elvmass.io.muse_fast", "read_muse_fast"),
    ("read / fast MUSE reader / assemble record", "elvmass.io.muse_fast", "assemble_record"),
    ("signal", "elvmass.signal.analysis", "analyze_ecg"),
    ("signal / band-pass filter", "elvmass.signal.analysis", "bandpass_filter"),
    ("signal / combine leads", "elvmass.signal.analysis", "combine_leads"),
    ("signal / R peaks", "elvmass.signal.analysis", "_peaks_on_combined"),
    ("signal / choose beat", "elvmass.signal.analysis", "_choose_beat"),
    ("signal / quality flags", "elvmass.signal.analysis", "assess_quality"),
    ("signal / model view", "elvmass.signal.analysis", "view_and_span"),
    ("signal / median + delineation beat", "elvmass.signal.analysis", "_beat_and_delineation_window"),
    ("signal / fiducials", "elvmass.signal.analysis", "locate_fiducials"),
    ("signal / P and T wave flags", "elvmass.signal.analysis", "_p_and_t_flags"),
    ("signal / measurements", "elvmass.signal.analysis", "measure_beat"),
    ("signal / voltage criteria", "elvmass.signal.analysis", "voltage_criteria"),
    ("model forward (one call per chunk)", "elvmass.bundle", "Bundle.run"),
    ("content hash", "elvmass.archive", "content_hash"),
)

BUDGET_MS = 2 * 1000 / 300  # 300 files/s on 2 cores


def archive_split(model: Path, files: list[Path], reps: int = 3) -> dict:
    """CPU ms per file of each archive-path stage (best of ``reps`` passes) and of the whole chunk."""
    import functools
    import importlib
    import time

    import torch

    from elvmass.archive import _worker_bundle, score_chunk

    torch.set_num_threads(1)
    _worker_bundle(str(model))
    root = files[0].parent
    rel = [str(f.relative_to(root)) for f in files]
    acc: dict[str, float] = {}
    undo = []
    for label, mod, fn in ARCHIVE_STAGES:
        owner = importlib.import_module(mod)
        if "." in fn:
            cls, fn = fn.split(".")
            owner = getattr(owner, cls)
        orig = getattr(owner, fn)

        def wrapped(*a, __orig=orig, __label=label, **k):
            t0 = time.process_time()
            try:
                return __orig(*a, **k)
            finally:
                acc[__label] = acc.get(__label, 0.0) + time.process_time() - t0

        setattr(owner, fn, functools.wraps(orig)(wrapped))
        undo.append((owner, fn, orig))
    best: dict[str, float] = {}
    try:
        score_chunk(str(model), str(root), rel[:5])
        for _ in range(reps):
            acc.clear()
            t0 = time.process_time()
            frame = score_chunk(str(model), str(root), rel)
            total = time.process_time() - t0
            for k, v in [*acc.items(), ("whole chunk (score_chunk)", total)]:
                best[k] = min(best.get(k, float("inf")), v / len(rel) * 1000)
    finally:
        for owner, fn, orig in reversed(undo):
            setattr(owner, fn, orig)
    whole = best["whole chunk (score_chunk)"]
    read, signal = best.get("read", 0.0), best.get("signal", 0.0)
    return {"files": len(rel), "predicted": int(frame["error"].isna().sum()),
            "cpu_ms_per_file": {k: round(v, 3) for k, v in best.items()},
            "read_ms": round(read, 2), "signal_ms": round(signal, 2),
            "everything_else_ms": round(whole - read - signal, 2),
            "budget_ms_for_300_files_per_s_on_2_cores": round(BUDGET_MS, 2),
            "ceiling_files_per_s_on_2_free_cores": round(2000 / whole, 1),
            "read_plus_signal_over_budget": read + signal > BUDGET_MS}


def _timed_chunks(model: str, root: str, rel: list[str], barrier, reps: int, queue) -> None:
    """One process of :func:`side_by_side`: warm up, wait for the others, then score ``rel`` ``reps`` times."""
    import time

    import torch

    from elvmass.archive import _worker_bundle, score_chunk

    torch.set_num_threads(1)
    _worker_bundle(model)
    score_chunk(model, root, rel[:5])
    barrier.wait()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        score_chunk(model, root, rel)
        best_wall, best_cpu = min(best_wall, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    queue.put((best_wall, best_cpu))


def side_by_side(model: Path, files: list[Path], reps: int = 3) -> dict:
    """The chunk's ms per file in one process alone and in two processes at once (each on the same files):
    what two cores give for this work, before any Dask, driver or start-up cost."""
    import multiprocessing as mp

    root = files[0].parent
    rel = [str(f.relative_to(root)) for f in files]
    ctx = mp.get_context("spawn")
    out = {}
    for n in (1, 2):
        barrier, queue = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_timed_chunks, args=(str(model), str(root), rel, barrier, reps, queue)) for _ in range(n)]
        for p in procs:
            p.start()
        res = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        out[f"processes_{n}"] = {"wall_ms_per_file": round(max(w for w, _ in res) / len(rel) * 1000, 3),
                                 "cpu_ms_per_file": round(max(c for _, c in res) / len(rel) * 1000, 3)}
    alone, both = out["processes_1"]["wall_ms_per_file"], out["processes_2"]["wall_ms_per_file"]
    out["slowdown_side_by_side"] = round(both / alone, 3)
    out["measured_ceiling_files_per_s_2_processes"] = round(2000 / both, 1)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--files", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--archive", action="store_true", help="the archive path's CPU split, no profiler")
    parser.add_argument("--budget-ms", type=float, default=BUDGET_MS,
                        help="--archive target: CPU-ms per file of the whole chunk (exit 1 above)")
    args = parser.parse_args(argv)
    if args.archive:
        import os

        files = sorted(args.files.rglob("*.xml"))[: args.n]
        out = archive_split(args.model, files)
        out["side_by_side"] = side_by_side(args.model, files)
        out["load_avg_1min"] = os.getloadavg()[0]
        print(json.dumps(out, indent=1))
        whole = out["cpu_ms_per_file"]["whole chunk (score_chunk)"]
        ok = whole <= args.budget_ms
        print(f"target: at most {args.budget_ms:.2f} CPU-ms per file: {whole:.2f} ms, {'met' if ok else 'MISSED'}")
        return 0 if ok else 1

    import numpy as np
    import torch

    from elvmass.bundle import load_bundle
    from elvmass.io.muse_fast import read_muse_fast
    from elvmass.io.vendor import read_vendor_ecg
    from elvmass.predict import predict_files

    files = sorted(args.files.rglob("*.xml"))[: args.n]
    bundle = load_bundle(args.model)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    predict_files(bundle, files[:3])
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(predict_files, bundle, files)
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats
    per = {}
    for label, fn in STAGES.items():
        cum = sum(v[3] for k, v in stats.items() if k[2] == fn)
        per[label] = round(cum / len(files) * 1000, 2)
    out = {"files": len(files), "profiled_ms_per_file": round(wall / len(files) * 1000, 2), "stages_ms_per_file": per}

    x = np.random.default_rng(0).normal(size=(64, 12, bundle.signal_config.view_length)).astype(np.float32)
    name = bundle.model_for_sex("M")
    scaler = bundle.scalers[name]
    import pandas as pd

    from elvmass.features import scalar_table

    d, p, _ = scaler.transform(scalar_table(pd.DataFrame([{"age_years": 60, "sex": "M", "height_cm": 170,
                                                             "weight_kg": 70}])))
    model = {}
    for threads in (1, default_threads):
        torch.set_num_threads(threads)
        for bs in (1, 8, 64):
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 1.0:
                bundle.run(name, x[:bs], np.repeat(d, bs, 0), np.repeat(p, bs, 0))
                n += bs
            model[f"threads_{threads}_batch_{bs}"] = round((time.perf_counter() - t0) / n * 1000, 3)
    out["model_ms_per_file"] = model
    for label, fn in (("general", lambda f: read_vendor_ecg(f, "ge_muse_xml")), ("fast", read_muse_fast)):
        t0 = time.perf_counter()
        for f in files:
            fn(f)
        out[f"read_{label}_ms_per_file"] = round((time.perf_counter() - t0) / len(files) * 1000, 2)
    import os

    out["load_avg_1min"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
