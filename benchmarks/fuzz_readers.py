"""Fuzz campaign for :func:`elvmass.read_ecg`: mutated copies of real files of every format must read into a
valid record or raise an ``ElvmassError`` (``ECGReadError``), nothing else, within 5 s and bounded memory.

Run from the repository root::

    python benchmarks/fuzz_readers.py                       # 300 cases per format, seed 0
    python benchmarks/fuzz_readers.py --cases 2000 --seed 7 --budget-s 600 --json fuzz.json

The seeds are the real files in ``../shared/data`` (GE MUSE, Philips UTF-8 and UTF-16, HL7 aECG, DICOM, a
PTB-XL WFDB record's header and signal file) and NumPy/CSV arrays made from that record. Each case applies
1-3 mutations drawn from a seeded generator: bit flips, truncation, byte insertion, deletion of a byte range,
deletion of a whole field (an XML element, a header line, a CSV row or column cell) and replacement of a number
by a hostile one (0, -1, 1e9, NaN, ...). Every mutation is recorded with its concrete parameters (positions,
bytes), so a case is replayed exactly from the real file by :func:`apply_ops`; a failing case is minimised by
dropping mutations while the failure stays the same, and its ops are printed for a regression test
(tests/test_fuzz_readers.py).

Each case runs in a worker process (forked once, restarted after a hang or a crash) under a 5-s timeout of the
worker's CPU time (wall time on a machine shared with other work would call a starved worker hung; a reader
blocked without using CPU is caught by a 60-s wall-clock cap); the worker reports its resident memory after
each case. The report: cases per format, outcomes and exceptions by
type, the slowest case, peak memory, and the failures (exception types outside ElvmassError, hangs, records
that fail validation) with their minimised ops.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TIMEOUT_S = 5.0
HOSTILE_NUMBERS = [b"0", b"-1", b"1000000000", b"NaN", b"1e308", b"-99999999999", b"0.0000001", b"", b"inf"]

#: format -> (files written per case: role -> file name, how the seed bytes are made)
SEEDS = {
    "ge_muse_xml": {"ecg.xml": ("vendor/ge-muse-xml/muse_ecg1.xml",)},
    "philips_xml": {"ecg.xml": ("vendor/philips-xml/129DYPRG.XML",)},
    "philips_xml_utf16": {"ecg.xml": ("vendor/philips-xml/3191723_ZZDEMOPTONLY_1-04_orig.xml",)},
    "hl7_aecg": {"ecg.xml": ("vendor/hl7-aecg/example-aecg.xml",)},
    "dicom": {"ecg.dcm": ("vendor/dicom/waveform_ecg.dcm",)},
    "wfdb": {"rec.hea": ("ptbxl-sample/records500/00000/00001_hr.hea",),
             "rec.dat": ("ptbxl-sample/records500/00000/00001_hr.dat",)},
    "npy": {"ecg.npy": ("array:npy",)},
    "csv": {"ecg.csv": ("array:csv",)},
}
#: what read_ecg is called on, per format
ENTRY = {"wfdb": "rec.hea", "npy": "ecg.npy", "csv": "ecg.csv", "dicom": "ecg.dcm"}


def seed_files(data: Path = DATA) -> dict[str, dict[str, bytes]]:
    """format -> {file name: bytes} of the unmutated seeds."""
    import io

    import numpy as np

    out: dict[str, dict[str, bytes]] = {}
    array = None
    for fmt, files in SEEDS.items():
        out[fmt] = {}
        for name, (src,) in files.items():
            if src.startswith("array:"):
                if array is None:
                    from elvmass import read_ecg

                    array = read_ecg(data / "ptbxl-sample/records500/00000/00001_hr").signal_mv[:, :2500]
                if src == "array:npy":
                    buf = io.BytesIO()
                    np.save(buf, array)
                    out[fmt][name] = buf.getvalue()
                else:
                    header = "I,II,III,aVR,aVL,aVF,V1,V2,V3,V4,V5,V6\n"
                    rows = "\n".join(",".join(f"{v:.3f}" for v in row) for row in array.T)
                    out[fmt][name] = (header + rows + "\n").encode()
            else:
                raw = (data / src).read_bytes()
                out[fmt][name] = raw.replace(b"00001_hr", b"rec") if name == "rec.hea" else raw
    return out


# --- mutations: concrete, replayable byte operations ----------------------------------------------------
def _field_spans(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of whole fields: XML elements without children (UTF-8/8-bit or UTF-16), else lines."""
    if data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le", errors="replace")
        spans = [(2 + 2 * m.start(), 2 + 2 * m.end()) for m in re.finditer(r"<(\w+)[^<>]*>[^<]*</\1>", text)]
        return spans
    spans = [(m.start(), m.end()) for m in re.finditer(rb"<(\w+)[^<>]*>[^<]*</\1>", data[:2_000_000])]
    if not spans:
        spans = [(m.start(), m.end()) for m in re.finditer(rb"[^\n]*\n", data[:2_000_000])]
    return spans


def _number_spans(data: bytes) -> list[tuple[int, int]]:
    if data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le", errors="replace")
        return [(2 + 2 * m.start(), 2 + 2 * m.end()) for m in re.finditer(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", text[:200_000])]
    return [(m.start(), m.end()) for m in re.finditer(rb"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])", data[:200_000])]


def draw_op(rng: random.Random, name: str, data: bytes) -> tuple:
    """One mutation of the file ``name`` with concrete parameters."""
    n = len(data)
    kind = rng.choice(["flip", "flip", "truncate", "insert", "delete", "field", "field", "number", "number"])
    if kind == "flip" or n == 0:
        return ("flip", name, rng.randrange(max(n, 1)), rng.randrange(8))
    if kind == "truncate":
        return ("truncate", name, rng.randrange(n))
    if kind == "insert":
        k = rng.choice([1, 2, 4, 16, 64])
        return ("insert", name, rng.randrange(n + 1), bytes(rng.randrange(256) for _ in range(k)).hex())
    if kind == "delete":
        start = rng.randrange(n)
        return ("delete", name, start, min(n, start + rng.choice([1, 2, 8, 64, 512, 4096])))
    spans = _field_spans(data) if kind == "field" else _number_spans(data)
    if not spans:
        return ("flip", name, rng.randrange(n), rng.randrange(8))
    start, end = rng.choice(spans)
    if kind == "field":
        return ("delete", name, start, end)
    new = rng.choice(HOSTILE_NUMBERS)
    if data.startswith(b"\xff\xfe"):
        new = new.decode().encode("utf-16-le")
    return ("replace", name, start, end, new.hex())


def apply_ops(files: dict[str, bytes], ops) -> dict[str, bytes]:
    """The files after the recorded mutations (each op names the file it changes)."""
    out = dict(files)
    for op in ops:
        kind, name = op[0], op[1]
        data = bytearray(out[name])
        if kind == "flip":
            if data:
                data[op[2] % len(data)] ^= 1 << op[3]
        elif kind == "truncate":
            del data[op[2]:]
        elif kind == "insert":
            data[op[2]:op[2]] = bytes.fromhex(op[3])
        elif kind == "delete":
            del data[op[2]:op[3]]
        elif kind == "replace":
            data[op[2]:op[3]] = bytes.fromhex(op[4])
        else:
            raise ValueError(f"unknown op {kind!r}")
        out[name] = bytes(data)
    return out


def draw_case(files: dict[str, bytes], rng: random.Random) -> list[tuple]:
    ops = []
    current = dict(files)
    for _ in range(rng.choice([1, 1, 2, 3])):
        name = rng.choice(sorted(current))
        op = draw_op(rng, name, current[name])
        ops.append(op)
        current = apply_ops(current, [op])
    return ops


# --- judging one case -----------------------------------------------------------------------------------
def judge(path: Path) -> tuple[str, str, str]:  # noqa: C901
    """(outcome, exception type, message): 'record', 'error' (an ElvmassError) or 'failure' (anything else)."""
    import numpy as np

    from elvmass import read_ecg
    from elvmass.errors import ElvmassError
    from elvmass.record import LEADS, MAX_FS_HZ, MIN_FS_HZ, ECGRecord

    try:
        rec = read_ecg(path, fs_hz=500.0 if path.suffix in (".npy", ".csv") else None)
    except ElvmassError as exc:
        msg = str(exc)
        if "\n" in msg or str(path) not in msg:
            return "failure", type(exc).__name__, f"message not one line naming the file: {msg[:300]!r}"
        return "error", type(exc).__name__, msg[:300]
    except BaseException as exc:  # noqa: BLE001 - the point of the campaign
        import traceback

        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else "?"
        return "failure", type(exc).__name__, f"{where}: {str(exc)[:300]}"
    ok = (isinstance(rec, ECGRecord) and rec.signal_mv.dtype == np.float32 and rec.signal_mv.ndim == 2
          and rec.signal_mv.shape[0] == len(LEADS) and rec.signal_mv.shape[1] > 0
          and MIN_FS_HZ <= rec.fs_hz <= MAX_FS_HZ)
    if not ok:
        return "failure", "InvalidRecord", f"shape {getattr(rec.signal_mv, 'shape', None)} fs {rec.fs_hz}"
    return "record", "", ""


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _worker(conn, max_rss_mb: float) -> None:
    # bound the worker's address space so a huge allocation fails (MemoryError) instead of taking the machine
    try:
        limit = int(max_rss_mb * 1e6 * 4)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass
    start_rss = _rss_mb()  # what the forked worker inherited from its parent (a test run holds torch etc.)
    while True:
        msg = conn.recv()
        if msg is None:
            return
        path = Path(msg)
        c0 = time.process_time()
        outcome = judge(path)
        # the case's time: CPU seconds of this process (wall time on a shared machine measures the others)
        rss = _rss_mb()
        conn.send((*outcome, time.process_time() - c0, rss, rss - start_rss))


class Runner:
    """A forked worker that judges one file at a time, restarted after a hang or a death."""

    def __init__(self, max_rss_mb: float = 1500.0):
        self.ctx = mp.get_context("fork")
        self.max_rss_mb = max_rss_mb
        self._start()

    def _start(self):
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.max_rss_mb), daemon=True)
        self.proc.start()

    def _cpu_s(self) -> float:
        """CPU seconds the worker has used (user + system), from /proc; wall time where /proc is missing."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return time.perf_counter()

    def run(self, path: Path, timeout: float = TIMEOUT_S, wall_cap: float = 12 * TIMEOUT_S):
        """Judge one file. A hang is more than ``timeout`` s of the worker's CPU time on the case (so a
        machine shared with other work does not count as a hang), or ``wall_cap`` s of wall time (a reader
        blocked on I/O)."""
        cpu0, t0 = self._cpu_s(), time.perf_counter()
        self.conn.send(str(path))
        while True:
            if self.conn.poll(0.25):
                try:
                    return self.conn.recv()
                except EOFError:
                    self.restart()
                    return ("failure", "WorkerDied", "the reader killed its process", time.perf_counter() - t0, 0.0, 0.0)
            cpu, wall = self._cpu_s() - cpu0, time.perf_counter() - t0
            if cpu > timeout or wall > wall_cap:
                self.restart()
                return ("failure", "Hang", f"no answer after {cpu:.1f} s CPU / {wall:.1f} s wall", wall, 0.0, 0.0)

    def restart(self):
        self.proc.kill()
        self.proc.join()
        self._start()

    def close(self):
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()


def _write(workdir: Path, files: dict[str, bytes]) -> None:
    for p in workdir.iterdir():
        p.unlink()
    for name, data in files.items():
        (workdir / name).write_bytes(data)


def minimise(runner: Runner, workdir: Path, entry: str, seeds: dict[str, bytes], ops: list, outcome: tuple) -> list:
    """Drop mutations one at a time while the failure (outcome and exception type) stays the same."""
    ops = list(ops)
    changed = True
    while changed and len(ops) > 1:
        changed = False
        for i in range(len(ops)):
            trial = ops[:i] + ops[i + 1:]
            _write(workdir, apply_ops(seeds, trial))
            got = runner.run(workdir / entry)
            if got[:2] == outcome[:2]:
                ops, changed = trial, True
                break
    return ops


def campaign(cases: int = 300, seed: int = 0, budget_s: float | None = None, formats=None, data: Path = DATA,
             max_rss_mb: float = 1500.0, log=None) -> dict:
    """Run the campaign; ``budget_s`` bounds the time per format (cases stop early when it is spent)."""
    import elvmass.io  # noqa: F401 - imported before forking so the worker starts warm
    from elvmass import read_ecg

    all_seeds = seed_files(data)
    formats = list(formats or all_seeds)
    workdir = Path(tempfile.mkdtemp(prefix="elvmass-fuzz-"))
    for fmt in formats:  # warm the parsers (imports) in the parent, so the forked worker has them
        _write(workdir, all_seeds[fmt])
        read_ecg(workdir / ENTRY.get(fmt, "ecg.xml"), fs_hz=500.0)
    runner = Runner(max_rss_mb)
    report: dict = {"seed": seed, "timeout_s": TIMEOUT_S, "formats": {}, "failures": []}
    slowest = (0.0, None)
    peak_rss = peak_growth = 0.0
    try:
        for fmt in formats:
            seeds = all_seeds[fmt]
            entry = ENTRY.get(fmt, "ecg.xml")
            rng = random.Random(f"{seed}:{fmt}")
            outcomes: Counter = Counter()
            exceptions: Counter = Counter()
            t_fmt = time.perf_counter()
            n = 0
            for i in range(cases):
                if budget_s is not None and time.perf_counter() - t_fmt > budget_s:
                    break
                ops = draw_case(seeds, rng)
                _write(workdir, apply_ops(seeds, ops))
                result = runner.run(workdir / entry)
                kind, exc_type, message, elapsed, rss, growth = result
                n += 1
                outcomes[kind] += 1
                if exc_type:
                    exceptions[exc_type] += 1
                peak_rss = max(peak_rss, rss)
                peak_growth = max(peak_growth, growth)
                if elapsed > slowest[0]:
                    slowest = (elapsed, {"format": fmt, "case": i, "ops": ops, "outcome": kind, "exception": exc_type})
                if kind == "failure":
                    small = minimise(runner, workdir, entry, seeds, ops, result)
                    report["failures"].append({"format": fmt, "case": i, "exception": exc_type, "message": message,
                                               "ops": small})
                    if log:
                        log(f"FAILURE {fmt} case {i}: {exc_type}: {message}\n    ops={small!r}")
            report["formats"][fmt] = {"cases": n, "outcomes": dict(outcomes), "exceptions": dict(exceptions),
                                      "seconds": round(time.perf_counter() - t_fmt, 1)}
            if log:
                log(f"{fmt}: {n} cases, {dict(outcomes)}, {dict(exceptions)}")
    finally:
        runner.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report["slowest_case"] = {"seconds": round(slowest[0], 3), **(slowest[1] or {})}
    report["peak_worker_rss_mb"] = round(peak_rss, 1)
    report["peak_worker_growth_mb"] = round(peak_growth, 1)  # above what the worker inherited when forked
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="cases per format")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=None, help="time limit per format (s)")
    parser.add_argument("--formats", nargs="*", default=None, choices=sorted(SEEDS))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--max-rss-mb", type=float, default=1500.0, help="memory bound a case may reach")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    t0 = time.perf_counter()
    report = campaign(args.cases, args.seed, args.budget_s, args.formats, args.data, args.max_rss_mb,
                      log=lambda m: print(m, flush=True))
    report["elapsed_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps({k: v for k, v in report.items() if k != "failures"}, indent=1))
    print(f"{len(report['failures'])} failures")
    for f in report["failures"]:
        print(f"  {f['format']} {f['exception']}: {f['message']}\n    ops={f['ops']!r}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    bad_mem = report["peak_worker_rss_mb"] > args.max_rss_mb
    return 1 if report["failures"] or bad_mem else 0


if __name__ == "__main__":
    raise SystemExit(main())
