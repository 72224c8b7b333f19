"""Where the time of `elvmass predict` goes, per file: read, filter, peaks, beat, quality, fiducials, model.

Run from the repository root::

    python benchmarks/bench_predict_path.py --model MODEL_DIR --files DIR_OF_MUSE_XML [--n 100]

Profiles :func:`elvmass.predict.predict_files` (one model call per file, as ``elvmass predict`` does) with
cProfile and reports the cumulative ms per file of each stage, then the model alone per file at batch
sizes 1, 8 and 64 with torch on 1 thread and on torch's default thread count, and the two MUSE readers.
Profiling inflates Python-heavy stages a little; the shares are what to read.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--files", type=Path, required=True)
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args(argv)

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
