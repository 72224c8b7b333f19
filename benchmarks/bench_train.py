"""Training-speed benchmark for eLVMass-Net on this machine's CPU, against two peers in the same run.

One fold of the paper preset (1,459 cases: 1,050 training, 117 validation, 12 x 225-sample beats,
batch 64) on synthetic arrays of that shape whose target depends on the waveform (so early stopping
behaves as on a cohort), timed three ways, interleaved so that load from other processes hits all
three alike (the best of ``--repeats`` rounds is kept):

* ``reference``: the training code before the speed work (issue 18), kept verbatim below:
  per-batch fancy-index copies, per-sample ``torch.roll`` augmentation, the for-loop AdamW,
  Conv1d in (B, C, L) layout, ``deepcopy`` of the best weights, validation under ``no_grad``;
* ``plain``: the plain PyTorch loop a user would write for the same model, batch size and data
  (``DataLoader`` over a ``TensorDataset``, ``AdamW``, ``L1Loss``, validation each epoch);
* ``elvmass``: :func:`elvmass.training.fit_model` as shipped, with its per-phase timings.

Measured: training samples/s over a fixed number of epochs (``--epochs``), the time per phase
(data/augmentation, forward, backward, optimiser, validation, early-stopping bookkeeping), and one
fold end to end (arrays -> fitted model, early stopping on) with each code's paper preset: the
reference with the old preset (cosine, 25 epochs, patience 6), elvmass with ``--schedule`` /
``--fold-epochs`` (default: the paper preset's cosine, 18 epochs since 2 Dec 2026; one-cycle at 12 epochs lost 0.33 g in
``train_accuracy_ab.py`` and was not adopted).

Each code runs at its own paper preset's beat length: the reference at 225 samples (0.9 s at 250 Hz),
elvmass and the plain loop at today's (``--length``, default the preset's: 112 samples, 125 Hz). When
the two differ, elvmass's loop is also timed at 225 with the reference's kernel-5 network
(``elvmass@225``), so the loop's own gain and the
preset's are both reported.

Targets (the run exits 1 when one is missed, so it can be used as a check):

* fold end to end: elvmass at least ``--target`` (2.0) times the reference's speed;
* samples/s: elvmass at least ``--plain-target`` (0.95) times the plain loop's.

    PYTHONPATH=src python benchmarks/bench_train.py                  # all of it (~3 min on an idle 2-core machine)
    PYTHONPATH=src python benchmarks/bench_train.py --no-fold --epochs 1 --repeats 1   # throughput only, quick
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time

import numpy as np
import torch
from torch import nn

from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig, count_parameters
from elvmass.training import TensorData, TrainConfig, fit_model

GROUPS = ((0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11))
#: the paper preset's network before issue 18 (kernel 5), trained by the reference code
REFERENCE_NET = ElvmassNetConfig(lead_groups=GROUPS, channels=(32, 32, 32, 32), kernel_size=5, stride=2, ecg_embed_dim=64,
                                 scalar_hidden=16, head_hidden=(64,), dropout=0.1, head_dropout=0.1)


def _paper_net() -> ElvmassNetConfig:
    from elvmass.experiments.study import make_preset

    return dataclasses.replace(make_preset("paper").net, lead_groups=GROUPS, seed=0)


#: today's paper preset's network (kernel 3 since 2 Dec 2026), trained by elvmass and the plain loop
PAPER_NET = _paper_net()
#: the paper preset's training settings before issue 18 (evaluate/study.py make_preset("paper"))
OLD_PAPER_TRAIN = TrainConfig(epochs=25, batch_size=64, lr=2e-3, patience=6, schedule="cosine", progress=False)
REFERENCE_LENGTH = 225  #: the old paper preset's beat: 0.9 s at 250 Hz
PHASES = ("data", "forward", "backward", "optimiser", "validation", "bookkeeping")


def make_fold(n_train: int = 1050, n_val: int = 117, length: int = 225, seed: int = 0) -> tuple[TensorData, TensorData]:
    """Arrays of the paper preset's shape; the target is a QRS-like bump's amplitude in V5 plus noise."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    t = np.arange(length) / length
    bump = np.exp(-((t - 0.4) / 0.03) ** 2)
    z = rng.normal(size=n)
    x = rng.normal(0, 0.1, (n, 12, length)).astype(np.float32)
    x[:, 10] += (1.0 + 0.3 * z[:, None]) * bump
    demo, par = rng.normal(size=(n, 4)), rng.normal(size=(n, 4))
    y = (z + 0.3 * demo[:, 0] + 0.3 * rng.normal(size=n)).astype(np.float32)
    data = TensorData(x, demo, par, y)
    return data.subset(np.arange(n_train)), data.subset(np.arange(n_train, n))


# --------------------------------------------------------------------------------------------------
# reference: the fit loop of elvmass.training before issue 18, verbatim but for the phase timers
# --------------------------------------------------------------------------------------------------


def _ref_augment(x, cfg, gen):
    if cfg.amplitude_jitter > 0:
        gain = 1.0 + cfg.amplitude_jitter * torch.randn(x.shape[0], 1, 1, generator=gen)
        x = x * gain
    if cfg.shift_max_samples > 0:
        shifts = torch.randint(-cfg.shift_max_samples, cfg.shift_max_samples + 1, (x.shape[0],), generator=gen)
        x = torch.stack([torch.roll(xi, int(s), dims=-1) for xi, s in zip(x, shifts)])
    return x


def _ref_tensors(data, idx=None):
    sl = slice(None) if idx is None else idx
    return (torch.from_numpy(data.ecg[sl]), torch.from_numpy(data.demographics[sl]),
            torch.from_numpy(data.params[sl]), torch.from_numpy(data.target[sl]))


@torch.no_grad()
def _ref_predict(model, data, batch_size=256):
    model.eval()
    out = []
    for start in range(0, len(data), batch_size):
        ecg, demo, par, _ = _ref_tensors(data, slice(start, start + batch_size))
        out.append(model(ecg, demo, par).numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _old_layout(model: ElvmassNet) -> ElvmassNet:
    for enc in model.encoders:
        enc.channels_last = False  # the (B, C, L) Conv1d path, as before
    return model


def reference_fit(model_config, train, val, config, timings):
    clock = time.perf_counter
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(config.seed)
    model = _old_layout(ElvmassNet(dataclasses.replace(model_config, seed=config.seed)))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    n_batches = math.ceil(len(train) / config.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * n_batches)
    loss_fn = nn.L1Loss()
    gen = torch.Generator().manual_seed(config.seed)
    ecg_all, demo_all, par_all, y_all = _ref_tensors(train)
    history = []
    best_state = copy.deepcopy(model.state_dict())
    best_mae, best_epoch, stale = math.inf, 0, 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        total = 0.0
        for b in range(n_batches):
            ta = clock()
            idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
            x = _ref_augment(ecg_all[idx], config, gen)
            d, p, y = demo_all[idx], par_all[idx], y_all[idx]
            tb = clock()
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x, d, p), y)
            tc = clock()
            loss.backward()
            td = clock()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            te = clock()
            for k, dt in zip(PHASES[:4], (tb - ta, tc - tb, td - tc, te - td)):
                timings[k] += dt
        ta = clock()
        pred = _ref_predict(model, val)
        val_mae = float(np.nanmean(np.abs(pred - val.target)))
        tb = clock()
        history.append({"epoch": epoch, "train_mae": total / len(train), "val_mae": val_mae})
        if val_mae < best_mae - 1e-6:
            best_mae, best_epoch, stale = val_mae, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        timings["validation"] += tb - ta
        timings["bookkeeping"] += clock() - tb
        if stale >= config.patience:
            break
    model.load_state_dict(best_state)
    return model, history, best_epoch, best_mae


# --------------------------------------------------------------------------------------------------
# peer: a plain PyTorch loop of the same model, batch size and data
# --------------------------------------------------------------------------------------------------


def plain_fit(model_config, train, val, config, timings):
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(config.seed)
    model = ElvmassNet(model_config)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loader = DataLoader(TensorDataset(*_ref_tensors(train)), batch_size=config.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    xv, dv, pv, yv = _ref_tensors(val)
    loss_fn = nn.L1Loss()
    t = time.perf_counter()
    for _ in range(config.epochs):
        model.train()
        for x, d, p, y in loader:
            opt.zero_grad()
            loss = loss_fn(model(x, d, p), y)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            float(loss_fn(model(xv, dv, pv), yv))
    timings["total"] = time.perf_counter() - t
    return model


# --------------------------------------------------------------------------------------------------


def _timed(fn, *args):
    timings = dict.fromkeys(PHASES, 0.0)
    t0 = time.perf_counter()
    out = fn(*args, timings)
    return time.perf_counter() - t0, timings, out


def throughput(ref_fold, fold, epochs: int, repeats: int, threads: int) -> dict:
    """Samples/s: the reference on ``ref_fold`` (its preset's beats), the plain loop and elvmass on
    ``fold`` (today's), and elvmass on ``ref_fold`` too when the two differ."""
    cfg = dataclasses.replace(OLD_PAPER_TRAIN, epochs=epochs, patience=epochs + 1, num_threads=threads)
    (rtrain, rval), (train, val) = ref_fold, fold
    runs = {
        "reference": lambda tm: reference_fit(REFERENCE_NET, rtrain, rval, cfg, tm),
        "plain": lambda tm: plain_fit(PAPER_NET, train, val, cfg, tm),
        "elvmass": lambda tm: fit_model(PAPER_NET, train, val, cfg, timings=tm),
    }
    if rtrain.ecg.shape[-1] != train.ecg.shape[-1]:
        runs["elvmass@225"] = lambda tm: fit_model(REFERENCE_NET, rtrain, rval, cfg, timings=tm)
    # warm-up (not timed): the first fit in a process pays for oneDNN's kernel set-up and lazy imports
    small_tr, small_va = train.subset(np.arange(min(len(train), 64))), val.subset(np.arange(min(len(val), 16)))
    warm = dataclasses.replace(cfg, epochs=1)
    reference_fit(REFERENCE_NET, small_tr, small_va, warm, dict.fromkeys(PHASES, 0.0))
    plain_fit(PAPER_NET, small_tr, small_va, warm, {})
    fit_model(PAPER_NET, small_tr, small_va, warm)
    best: dict[str, tuple[float, dict]] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            el, tm, _ = _timed(fn)
            if name not in best or el < best[name][0]:
                best[name] = (el, tm)
    out = {}
    for name, (el, tm) in best.items():
        out[name] = {"seconds": round(el, 3), "samples_per_s": round(len(train) * epochs / el, 1),
                     "phases_s": {k: round(tm[k], 3) for k in PHASES if k in tm and tm[k] > 0}}
    return out


def one_fold(ref_fold, fold, threads: int, schedule: str, epochs: int) -> dict:
    old_cfg = dataclasses.replace(OLD_PAPER_TRAIN, num_threads=threads)
    new_cfg = dataclasses.replace(OLD_PAPER_TRAIN, num_threads=threads, schedule=schedule, epochs=epochs)
    (rtrain, rval), (train, val) = ref_fold, fold
    el_ref, _, (model, hist, best_epoch, best_mae) = _timed(lambda tm: reference_fit(REFERENCE_NET, rtrain, rval, old_cfg, tm))
    el_new, _, res = _timed(lambda tm: fit_model(PAPER_NET, train, val, new_cfg, timings=tm))
    return {
        "reference": {"seconds": round(el_ref, 2), "epochs_run": len(hist), "best_epoch": best_epoch,
                      "val_mae": round(best_mae, 4), "config": "cosine, 25 epochs, patience 6"},
        "elvmass": {"seconds": round(el_new, 2), "epochs_run": len(res.history), "best_epoch": res.best_epoch,
                    "val_mae": round(res.best_val_mae_g, 4), "config": f"{schedule}, {epochs} epochs, patience 6"},
        "speedup": round(el_ref / el_new, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=1050, help="training cases (1,050 = one fold of the 1,459 cohort)")
    ap.add_argument("--n-val", type=int, default=117)
    ap.add_argument("--epochs", type=int, default=2, help="epochs per throughput measurement")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the fastest of each is kept")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--schedule", default="cosine", help="elvmass's schedule for the fold end to end")
    ap.add_argument("--fold-epochs", type=int, default=None, help="elvmass's epochs for the fold end to end "
                    "(default: the paper preset's)")
    ap.add_argument("--length", type=int, default=None,
                    help="beat samples for elvmass and the plain loop (default: the paper preset's, 112 at 125 Hz)")
    ap.add_argument("--no-fold", action="store_true", help="skip the fold end to end (throughput only)")
    ap.add_argument("--target", type=float, default=2.0, help="required fold speed-up over the reference")
    ap.add_argument("--plain-target", type=float, default=0.95, help="required samples/s ratio over the plain loop")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from elvmass.experiments.study import make_preset

    length = args.length or make_preset("paper").signal.view_length
    if args.fold_epochs is None:
        args.fold_epochs = make_preset("paper").train.epochs
    ref_fold = make_fold(args.n_train, args.n_val, length=REFERENCE_LENGTH)
    fold = make_fold(args.n_train, args.n_val, length=length)
    train, val = fold
    results: dict = {"n_train": len(train), "n_val": len(val), "threads": args.threads,
                     "parameters": count_parameters(ElvmassNet(PAPER_NET)),
                     "load_1min": float(open("/proc/loadavg").read().split()[0]) if sys.platform == "linux" else None}
    results["beat_samples"] = {"reference": REFERENCE_LENGTH, "elvmass": length}
    tp = throughput(ref_fold, fold, args.epochs, args.repeats, args.threads)
    results["throughput"] = tp
    ratio_ref = tp["elvmass"]["samples_per_s"] / tp["reference"]["samples_per_s"]
    ratio_plain = tp["elvmass"]["samples_per_s"] / tp["plain"]["samples_per_s"]
    results["samples_per_s_ratio"] = {"elvmass/reference": round(ratio_ref, 2), "elvmass/plain": round(ratio_plain, 2)}
    checks = {f"samples/s vs plain loop >= {args.plain_target}": ratio_plain >= args.plain_target}
    if not args.no_fold:
        results["fold"] = one_fold(ref_fold, fold, args.threads, args.schedule, args.fold_epochs)
        checks[f"fold speed-up vs reference >= {args.target}"] = results["fold"]["speedup"] >= args.target
    else:
        checks[f"samples/s vs reference >= {args.target}"] = ratio_ref >= args.target
    results["checks"] = checks
    if args.json:
        print(json.dumps(results))
    else:
        print(f"one fold: {len(train)} training / {len(val)} validation cases, 12 x {REFERENCE_LENGTH} samples "
              f"(reference) / 12 x {length} (elvmass, plain), "
              f"{results['parameters']} parameters, {args.threads} threads, load {results['load_1min']}")
        print(f"{'':10s} {'samples/s':>10s}  " + "  ".join(f"{k:>11s}" for k in PHASES))
        for name, r in tp.items():
            ph = "  ".join(f"{r['phases_s'].get(k, float('nan')):11.2f}" for k in PHASES)
            print(f"{name:10s} {r['samples_per_s']:10.1f}  {ph}")
        print(f"samples/s ratio: elvmass/reference {ratio_ref:.2f}, elvmass/plain {ratio_plain:.2f}")
        if "elvmass@225" in tp:
            print(f"the loop alone (both at 225 samples, kernel 5): elvmass/reference "
                  f"{tp['elvmass@225']['samples_per_s'] / tp['reference']['samples_per_s']:.2f}")
        if "fold" in results:
            f = results["fold"]
            for name in ("reference", "elvmass"):
                r = f[name]
                print(f"fold end to end, {name:9s} ({r['config']}): {r['seconds']:.1f} s, {r['epochs_run']} epochs, "
                      f"best {r['best_epoch']}, val MAE {r['val_mae']:.3f}")
            print(f"fold speed-up: {f['speedup']:.2f}x")
        for name, ok in checks.items():
            print(f"{'PASS' if ok else 'MISS'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
