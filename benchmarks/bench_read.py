"""Reading speed of :func:`elvmass.read_ecg` on the real files, in files per second per format.

Run from the repository root::

    python benchmarks/bench_read.py            # ../shared/data, 3 rounds
    python benchmarks/bench_read.py --rounds 5 --data /path/to/shared/data

Each round reads every vendor file (GE MUSE, Philips, HL7 aECG, DICOM) and every PTB-XL
record at 500 Hz once; the first (cold) read of each format is reported separately because
it includes importing the parser libraries.

Peer, measured in the same run and rounds: ``wfdb.rdrecord`` alone on the same WFDB records (the reference
reader, which elvmass's WFDB path replaces). Target: elvmass reads WFDB at least ``--min-wfdb-ratio`` (2.0)
times as many files per second as wfdb alone (measured 6-13x on the 2-core machine under load,
2026-12-02); the exit status is 1 when it does not (or when no WFDB record was found).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-wfdb-ratio", type=float, default=2.0,
                        help="target: elvmass WFDB files/s over wfdb.rdrecord's (exit 1 below)")
    args = parser.parse_args(argv)

    from elvmass.io import detect_format, find_ecg_files, read_ecg

    files = find_ecg_files(args.data / "vendor") + find_ecg_files(args.data / "ptbxl-sample" / "records500")
    if not files:
        print(f"no ECG files under {args.data}", file=sys.stderr)
        return 1
    by_format: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        by_format[detect_format(f)].append(f)

    cold: dict[str, float] = {}
    rates: dict[str, list[float]] = defaultdict(list)
    for rnd in range(args.rounds + 1):
        for fmt, paths in by_format.items():
            t0 = time.perf_counter()
            for i, p in enumerate(paths):
                read_ecg(p)
                if rnd == 0 and i == 0:
                    cold[fmt] = time.perf_counter() - t0
            elapsed = time.perf_counter() - t0
            if rnd > 0:
                rates[fmt].append(len(paths) / elapsed)

    print(f"{'format':<14}{'files':>7}{'files/s (median of %d)' % args.rounds:>28}{'ms/file':>10}{'first read ms':>16}")
    for fmt in sorted(by_format):
        r = statistics.median(rates[fmt])
        print(f"{fmt:<14}{len(by_format[fmt]):>7}{r:>28.1f}{1000 / r:>10.2f}{1000 * cold[fmt]:>16.1f}")

    wfdb_files = by_format.get("wfdb", [])
    if not wfdb_files:
        print("no WFDB records: the peer comparison cannot run", file=sys.stderr)
        return 1
    import wfdb

    peer = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for p in wfdb_files:
            wfdb.rdrecord(str(p.with_suffix("")))
        peer.append(len(wfdb_files) / (time.perf_counter() - t0))
    ratio = statistics.median(rates["wfdb"]) / statistics.median(peer)
    ok = ratio >= args.min_wfdb_ratio
    print(f"peer wfdb.rdrecord: {statistics.median(peer):.1f} files/s; elvmass/wfdb {ratio:.2f}x; "
          f"target >= {args.min_wfdb_ratio:g}x: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
