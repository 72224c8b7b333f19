"""Training-speed benchmark for eLVMass-Net on this machine's CPU.

Times one epoch (forward + backward + AdamW step over N single-beat views) for a few model
sizes, so a preset can be sized to a time budget. Random data: speed does not depend on it.

    /work/venv/bin/python benchmarks/bench_train.py --n 960 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig, count_parameters

VARIANTS = {
    "paper (32x4, stride 2, 250 Hz)": (dict(channels=(32, 32, 32, 32), stride=2), 225),
    "24x4, stride 2, 250 Hz": (dict(channels=(24, 24, 24, 24), stride=2), 225),
    "32x4, stride 1, 250 Hz": (dict(channels=(32, 32, 32, 32), stride=1), 225),
    "quick (8x3, 100 Hz)": (dict(channels=(8, 8, 8), stride=1, ecg_embed_dim=16, head_hidden=(16,)), 90),
}


def time_epoch(net_kw: dict, length: int, n: int, batch: int) -> float:
    net = ElvmassNet(ElvmassNetConfig(**net_kw))
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(n, 12, length)).astype(np.float32))
    d, p, y = torch.randn(n, 4), torch.randn(n, 4), torch.randn(n)
    net.train()
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        opt.zero_grad()
        loss = (net(x[s:s + batch], d[s:s + batch], p[s:s + batch]) - y[s:s + batch]).abs().mean()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=960, help="training cases per epoch (960 = one fold of the demo)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name, (kw, length) in VARIANTS.items():
        time_epoch(kw, length, min(args.n, 128), args.batch)  # warm-up
        t = min(time_epoch(kw, length, args.n, args.batch) for _ in range(2))
        print(f"{name:34s} params {count_parameters(ElvmassNet(ElvmassNetConfig(**kw))):7d}  epoch {t:6.2f} s")


if __name__ == "__main__":
    main()
