"""Training the segmentation model on LUDB (``elvmass segment train --ludb DIR --out MODEL_DIR``).

Every lead of the 96 training records (:data:`elvmass.segment.ludb.TRAIN`) is prepared as the model sees
it (:func:`elvmass.segment.network.prepare_leads`, 250 Hz) with its cardiologist labels (LUDB's 500 Hz
labels taken every second sample); samples outside the lead's annotated span are ignored by the loss.
Training: ``steps`` Adam steps (lr ``lr``, cosine decay) on batches of ``batch`` random 4-s crops that
overlap the annotated span, cross-entropy, amplitude scaling by U(0.6, 1.6) and Gaussian noise (0.02) as
augmentation, one CPU thread, seeded: the same seed gives the same weights. The class priors and the
HMM transitions (:func:`elvmass.segment.hmm.estimate_transitions`) are counted on the same labels.
"""

from __future__ import annotations

import math
import time

import numpy as np

from elvmass.segment.hmm import estimate_transitions
from elvmass.segment.ludb import LUDB_FS_HZ, TRAIN, read_ludb_record
from elvmass.segment.model import Segmenter
from elvmass.segment.network import MODEL_FS_HZ, SegmentNet, count_parameters, prepare_leads

CROP = 1000
STEP = int(round(LUDB_FS_HZ / MODEL_FS_HZ))


def training_arrays(ludb_dir, numbers=TRAIN) -> tuple[np.ndarray, np.ndarray]:
    """(leads, m) inputs and (leads, m) labels (-1 outside the annotated span) at the model rate."""
    xs, ys = [], []
    for number in numbers:
        rec = read_ludb_record(ludb_dir, number)
        x = prepare_leads(rec.signal_mv, rec.fs_hz)
        lab = rec.labels[:, ::STEP][:, : x.shape[1]]
        for k in range(12):
            if rec.spans[k, 0] < 0:
                continue
            y = np.full(x.shape[1], -1, dtype=np.int64)
            a, b = rec.spans[k] // STEP
            y[a : b + 1] = lab[k, a : b + 1]
            xs.append(x[k])
            ys.append(y)
    return np.stack(xs), np.stack(ys)


def train_segmenter(ludb_dir, *, steps: int = 600, batch: int = 32, lr: float = 3e-3, seed: int = 0,
                    progress=None, command: str | None = None, arrays=None, records=TRAIN) -> Segmenter:
    """Train on the LUDB ``records`` in ``ludb_dir`` (``arrays``: precomputed :func:`training_arrays` of those
    records, to skip reading). The records are kept in the model's metadata (``train_records``), which is how
    benchmarks know which records it may be scored on."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    records = tuple(int(r) for r in records)
    x, y = training_arrays(ludb_dir, records) if arrays is None else arrays
    labelled = [row[row >= 0] for row in y]
    counts = np.bincount(np.concatenate(labelled), minlength=4).astype(float)
    priors = counts / counts.sum()
    transitions = estimate_transitions(labelled)
    spans = [(int(np.flatnonzero(row >= 0)[0]), int(np.flatnonzero(row >= 0)[-1])) for row in y]
    net = SegmentNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-1)
    m = x.shape[1]
    t0 = time.time()
    losses = []
    net.train()
    for step in range(steps):
        rows = rng.integers(0, x.shape[0], size=batch)
        xb = np.empty((batch, 1, CROP), np.float32)
        yb = np.empty((batch, CROP), np.int64)
        for j, r in enumerate(rows):
            a, b = spans[r]
            lo = max(0, min(a - CROP // 2, m - CROP))
            hi = max(lo, min(b - CROP // 2, m - CROP))
            s = int(rng.integers(lo, hi + 1))
            xb[j, 0] = x[r, s : s + CROP] * rng.uniform(0.6, 1.6) + rng.normal(0, 0.02, CROP)
            yb[j] = y[r, s : s + CROP]
        loss = loss_fn(net(torch.from_numpy(xb)), torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress is not None and (step + 1) % 50 == 0:
            progress(f"step {step + 1}/{steps}: loss {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f} s)")
    net.eval()
    meta = {
        "trained_on": "LUDB v1.0.1 (Kalyakulina et al., IEEE Access 8:186181, 2020; ODC-By 1.0)",
        "train_records": list(records),
        "n_train_leads": int(x.shape[0]),
        "steps": steps, "batch": batch, "lr": lr, "seed": seed, "crop_samples": CROP,
        "final_loss": float(np.mean(losses[-50:])),
        "n_parameters": count_parameters(net),
        "train_seconds": round(time.time() - t0, 1),
        "command": command,
    }
    return Segmenter(net, priors, transitions, meta)
