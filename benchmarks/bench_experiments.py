"""Times `elvmass experiments --preset paper` (Tables 1a, 1b, 1c, S4, S5) on the built-in cohort.

The issue's target: the whole run in at most 30 minutes on a quiet 2-core machine, default seed,
1,459 patients. Run it when the machine is quiet (nothing else training):

    python benchmarks/bench_experiments.py --out /tmp/bench-exp            # generates the demo cohort first
    python benchmarks/bench_experiments.py --manifest demo-out/manifest.csv --out /tmp/bench-exp

It prints the wall time of the cohort generation (if any), of the experiments command, and, from
``experiments.json``, the time of each model's five fold tasks, so a preset can be resized from
per-task times. ``--workers`` and ``--threads`` are passed through (default: the CLI's defaults).
A second run into the same ``--out`` reuses every finished task (that is the resume feature), so
use ``--fresh`` to time from scratch.

Exits 1 when the experiments command's wall time exceeds ``--max-minutes`` (default 30, the target).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, help="an existing cohort manifest (default: generate the demo cohort)")
    ap.add_argument("--n", type=int, default=1459, help="patients to generate when no --manifest is given")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--tables", default="1a,1b,1c,s4,s5")
    ap.add_argument("--workers", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--fresh", action="store_true", help="delete OUT/experiments first (time every task)")
    ap.add_argument("--max-minutes", type=float, default=30.0, help="target: experiments wall time (exit 1 above)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.manifest
    if manifest is None:
        from elvmass.cohort import build_cohort, write_manifest
        from elvmass.synth import SynthConfig, generate_cohort

        t0 = time.perf_counter()
        synth = generate_cohort(SynthConfig(n=args.n, seed=0), args.out / "synth")
        build = build_cohort(synth.ecg_dir, synth.imaging_csv)
        manifest = write_manifest(build.manifest, args.out / "manifest.csv")
        print(f"cohort: {len(build.manifest)} rows in {time.perf_counter() - t0:.0f} s")
    exp = args.out / "experiments"
    if args.fresh and exp.exists():
        shutil.rmtree(exp)
    cmd = [sys.executable, "-m", "elvmass", "experiments", "--cohort", str(manifest), "--out", str(exp),
           "--preset", args.preset, "--tables", args.tables]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    print(" ".join(cmd))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    res = json.loads((exp / "experiments.json").read_text())
    per_model = defaultdict(list)
    for t in res["tasks"]:
        per_model[t["model"]].append(t["elapsed_s"])
    print(f"\nexperiments: {wall:.0f} s wall ({wall / 60:.1f} min), {len(res['tasks'])} tasks, "
          f"{sum(t['reused'] for t in res['tasks'])} reused")
    for model, times in per_model.items():
        print(f"  {model:28s} folds {' '.join(f'{x:6.1f}' for x in times)}  sum {sum(times):7.1f} s")
    print(f"  sum of task times {sum(sum(v) for v in per_model.values()):.0f} s (the rest: signal views, tables, report)")
    ok = wall <= 60.0 * args.max_minutes
    print(f"target: at most {args.max_minutes:g} min: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
