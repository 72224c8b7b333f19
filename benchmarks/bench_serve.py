"""Load test of `elvmass serve`: concurrent clients posting real vendor ECG files over loopback.

Run from the repository root::

    python benchmarks/bench_serve.py --model MODEL_DIR                  # 50 clients, 60 s
    python benchmarks/bench_serve.py --model MODEL_DIR --clients 8 --duration 10

Starts the service as a user would (``elvmass serve`` in a subprocess, 127.0.0.1, a free port), checks
which of the genuine files in ../shared/data/vendor it predicts (those are the load), then runs
``--clients`` client tasks posting them in turn until ``--duration`` has passed, and stops the service.
Reports requests/s, p50/p99 latency, the error count (any answer but 200, or a failed connection; it
must be 0) and the service's peak resident memory (VmHWM). Bounded: the whole run is cut at
duration + 300 s. Loopback only; nothing else is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vm_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def _load(url: str, files: list[tuple[str, bytes]], clients: int, duration_s: float):
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120.0) as client:
        async def worker(k: int):
            i = k
            while time.monotonic() < deadline:
                name, data = files[i % len(files)]
                i += 1
                t0 = time.perf_counter()
                try:
                    r = await client.post("/v1/predict", files={"file": (name, data)})
                    ok = r.status_code == 200
                    if not ok:
                        errors.append(f"{name}: {r.status_code} {r.text[:120]}")
                except httpx.HTTPError as exc:
                    ok = False
                    errors.append(f"{name}: {type(exc).__name__}")
                if ok:
                    latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    return latencies, errors, wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model bundle folder")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--threads", type=int, default=8, help="service worker threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import httpx

    from elvmass.io import find_ecg_files

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "elvmass", "serve", "--model", str(args.model), "--port", str(port),
                             "--threads", str(args.threads)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hard_stop = time.monotonic() + args.duration + 300
    try:
        while True:
            if proc.poll() is not None:
                print(f"the service stopped: {proc.stderr.read().decode(errors='replace').strip()}", file=sys.stderr)
                return 1
            try:
                if httpx.get(url + "/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > hard_stop:
                print("the service did not come up", file=sys.stderr)
                return 1
            time.sleep(0.5)
        files, skipped = [], []
        for p in find_ecg_files(args.data / "vendor"):
            r = httpx.post(url + "/v1/predict", files={"file": (p.name, p.read_bytes())}, timeout=120)
            (files if r.status_code == 200 else skipped).append((p.name, p.read_bytes()) if r.status_code == 200
                                                                 else f"{p.name} ({r.status_code}: {r.json().get('error')})")
        if not files:
            print("no vendor file could be predicted", file=sys.stderr)
            return 1
        rss_before = _vm_kb(proc.pid, "VmRSS")
        latencies, errors, wall = asyncio.run(asyncio.wait_for(
            _load(url, files, args.clients, args.duration), timeout=max(1.0, hard_stop - time.monotonic())))
        health = httpx.get(url + "/v1/health", timeout=10).json()
        peak_kb = _vm_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    lat = sorted(latencies)
    q = (lambda f: lat[min(len(lat) - 1, int(f * len(lat)))] * 1000) if lat else (lambda f: float("nan"))
    res = {
        "clients": args.clients, "duration_s": round(wall, 1), "requests_ok": len(lat), "errors": len(errors),
        "requests_per_s": round(len(lat) / wall, 2) if wall else None,
        "latency_ms": {"p50": round(q(0.50), 1), "p99": round(q(0.99), 1),
                       "mean": round(statistics.fmean(lat) * 1000, 1) if lat else None},
        "service_peak_rss_mb": round(peak_kb / 1024, 1) if peak_kb else None,
        "service_rss_before_load_mb": round(rss_before / 1024, 1) if rss_before else None,
        "model_calls": health.get("model_calls"), "requests_seen": health.get("requests"),
        "mean_batch": round(len(lat) / max(1, health.get("model_calls") or 1), 2),
        "files": [n for n, _ in files], "files_not_predicted": skipped, "first_errors": errors[:5],
        "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['clients']} clients for {res['duration_s']} s on {len(files)} vendor file(s): "
              f"{res['requests_per_s']} requests/s, p50 {res['latency_ms']['p50']} ms, p99 {res['latency_ms']['p99']} ms, "
              f"{res['errors']} error(s); service peak memory {res['service_peak_rss_mb']} MB; "
              f"{res['model_calls']} model calls (mean batch {res['mean_batch']}); load average {res['load_avg_1min']:.1f}")
        if skipped:
            print("not used (not predicted): " + "; ".join(skipped))
        for e in errors[:5]:
            print("error: " + e)
    return 0 if not errors else 1


if __name__ == "__main__":
    raise SystemExit(main())
