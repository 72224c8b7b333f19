"""Generate a synthetic cohort, time it, and print its calibration report.

    python benchmarks/synth_report.py --n 1459 --seed 0 --out /tmp/synth [--profile internal|external]

Prints the generation time, LVM mean +- SD by sex, LVH prevalence, the correlations of LVM with
height, weight, BSA, QRS duration, Cornell voltage and Sokolow-Lyon (measured with elvmass's
own signal pipeline on the written files) and the voltage criteria's sensitivity/specificity
for LVH, then whether each number lies within elvmass.synth.report.TARGETS. Exits 1 when one does not
(internal profile only: the targets are for the CT-based internal cohort; the external profile is reported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from elvmass.synth import SynthConfig, generate_cohort
from elvmass.synth.report import format_report, synth_report


def speed_ratio(k: int, profile: str) -> str:
    """Time simulate_patient on k patients with the real-beat templates and with the dipole model (its peer),
    in the same run, so the ratio holds under whatever load the machine has."""
    import dataclasses

    from elvmass.synth import cohort as c

    cfg = SynthConfig(n=k, seed=0, profile=profile)
    times = {}
    orig = c.PROFILES[profile]
    for name, use in (("templates", True), ("dipole", False)):
        c.PROFILES[profile] = dataclasses.replace(orig, phenotype=dataclasses.replace(orig.phenotype, use_templates=use))
        try:
            c.simulate_patient(0, cfg)  # warm caches (library load)
            t0 = time.perf_counter()
            for i in range(k):
                c.simulate_patient(i, cfg)
            times[name] = time.perf_counter() - t0
        finally:
            c.PROFILES[profile] = orig
    return (f"simulate_patient x{k}: templates {times['templates']:.2f} s, dipole {times['dipole']:.2f} s, "
            f"ratio {times['templates'] / times['dipole']:.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1459)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--profile", default="internal", choices=["internal", "external"])
    ap.add_argument("--format", default="muse", choices=["muse", "wfdb"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--json", action="store_true", help="also print the report as one JSON line")
    ap.add_argument("--speed-peer", type=int, default=100,
                    help="also time this many patients with the old Gaussian-wave dipole morphology (0: skip)")
    args = ap.parse_args()
    if args.speed_peer:
        print(speed_ratio(args.speed_peer, args.profile))
    t0 = time.perf_counter()
    out = generate_cohort(SynthConfig(n=args.n, seed=args.seed, profile=args.profile), args.out, fmt=args.format)
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = synth_report(args.out)
    t_rep = time.perf_counter() - t0
    print(f"generated {len(out.ecg_paths)} ECGs of {out.n_patients} patients in {t_gen:.1f} s; measured in {t_rep:.1f} s")
    print(format_report(rep))
    if args.json:
        print(json.dumps(rep, default=float))
    missed = [k for k, c in rep["checks"].items() if not c["within"]]
    return 1 if (missed and args.profile == "internal") else 0


if __name__ == "__main__":
    sys.exit(main())
