"""What `elvmass study --saliency` adds to a study's run time (issue 11: at most 10 %).

Runs the same study twice in one process, without and with ``saliency=True`` (paper preset by
default), after warming the signal cache so neither run pays for it, and prints both wall times, the
saliency block's own time (``results.json: saliency_s``: every network fold model explained on its own
test cases, Table 3, Figure 4 with ``--sex-specific``) and the two ratios:

* ``saliency_s / (elapsed_s - saliency_s)`` of the saliency run: what the saliency adds to the same run
  (robust on a shared machine, where the load changes between two runs);
* the wall time of the saliency run over the plain one (only meaningful on a quiet machine).

    python benchmarks/bench_saliency.py --manifest demo-out/manifest.csv --n 150 --out /tmp/bench-sal

``--n`` takes the manifest's first N rows (a smaller cohort; the saliency cost and the training cost
both grow about linearly with the number of cases, so the ratio carries over).

Exits 1 when the first ratio (what saliency adds to the same run) exceeds ``--max-added-pct`` (default 10,
the issue's target).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, help="use the manifest's first N rows")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--sex-specific", action="store_true")
    ap.add_argument("--max-added-pct", type=float, default=10.0, help="target: saliency's added share of the run, %%")
    args = ap.parse_args()

    from elvmass.experiments.study import default_cache_dir, load_study_manifest, make_preset, run_study, study_data

    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.manifest
    cache = default_cache_dir(manifest, args.out)
    if args.n:
        m = pd.read_csv(manifest).head(args.n)
        base = manifest.resolve().parent
        m["ecg_path"] = [str(p if Path(p).is_absolute() else base / p) for p in m["ecg_path"]]
        manifest = args.out / "manifest.csv"
        m.to_csv(manifest, index=False)
    preset = make_preset(args.preset)
    df, _ = load_study_manifest(manifest)
    t = time.perf_counter()
    study_data(df, [preset.net_spec()], cache).views(preset.signal)
    print(f"{len(df)} cases; signal cache warm in {time.perf_counter() - t:.1f} s", flush=True)
    res = {}
    for sal in (False, True):
        t = time.perf_counter()
        r = run_study(manifest, args.out / ("with_saliency" if sal else "plain"), preset, sex_specific=args.sex_specific,
                      saliency=sal, progress=False, cache_dir=cache)
        res["with_saliency" if sal else "plain"] = {"wall_s": round(time.perf_counter() - t, 1),
                                                     "elapsed_s": r["elapsed_s"], "saliency_s": r.get("saliency_s")}
        print(("with saliency" if sal else "plain"), res["with_saliency" if sal else "plain"], flush=True)
    s = res["with_saliency"]
    res["saliency_added_pct"] = round(100 * s["saliency_s"] / (s["elapsed_s"] - s["saliency_s"]), 2)
    res["wall_ratio"] = round(s["wall_s"] / res["plain"]["wall_s"], 3)
    print(json.dumps(res, indent=1))
    ok = res["saliency_added_pct"] <= args.max_added_pct
    print(f"target: saliency adds at most {args.max_added_pct:g} %: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
