"""The fit loop: it learns a waveform-dependent target, is deterministic, stops early and
restores the best epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elvmass.features import FeatureScaler
from elvmass.models.elvmassnet import ElvmassNetConfig
from elvmass.training import TensorData, TrainConfig, fit_model, predict_normalised

SMALL = ElvmassNetConfig(channels=(8, 8), kernel_size=5, ecg_embed_dim=16, scalar_hidden=4, head_hidden=(16,),
                         dropout=0.0, head_dropout=0.0, demographic_inputs=(), param_inputs=())


def _problem(n=240, seed=0):
    """LVM (g) proportional to the amplitude of a QRS-like bump in V5; the rest is noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(60) / 60.0
    bump = np.exp(-((t - 0.4) / 0.03) ** 2)
    lvm = rng.uniform(80, 250, n)
    x = rng.normal(0, 0.05, (n, 12, 60)).astype(np.float32)
    x[:, 10] += (lvm[:, None] / 100.0) * bump
    scaler = FeatureScaler.fit(pd_empty(n), lvm[:180], (), ())
    data = TensorData(x, np.zeros((n, 0)), np.zeros((n, 0)), scaler.normalise_target(lvm))
    return data, lvm, scaler


def pd_empty(n):
    import pandas as pd

    return pd.DataFrame(index=range(n))


def test_learns_waveform_target_better_than_the_mean():
    data, lvm, scaler = _problem()
    tr, va, te = np.arange(0, 180), np.arange(180, 210), np.arange(210, 240)
    res = fit_model(SMALL, data.subset(tr), data.subset(va), TrainConfig(epochs=30, lr=3e-3, batch_size=32, progress=False),
                    target_scale_g=scaler.target_sd_g)
    pred = scaler.to_grams(predict_normalised(res.model, data.subset(te)))
    mae = np.abs(pred - lvm[te]).mean()
    mean_mae = np.abs(lvm[tr].mean() - lvm[te]).mean()
    assert mae < 0.5 * mean_mae, (mae, mean_mae)
    # history is in grams and the best epoch's val MAE is what was restored
    best = min(h["val_mae_g"] for h in res.history)
    assert res.best_val_mae_g == pytest.approx(best)
    val_pred = scaler.to_grams(predict_normalised(res.model, data.subset(va)))
    assert np.abs(val_pred - lvm[va]).mean() == pytest.approx(best, rel=1e-4)


def test_bf16_forward_learns_too_and_keeps_float32_weights():
    data, lvm, scaler = _problem()
    tr, va, te = np.arange(0, 180), np.arange(180, 210), np.arange(210, 240)
    res = fit_model(SMALL, data.subset(tr), data.subset(va),
                    TrainConfig(epochs=30, lr=3e-3, batch_size=32, progress=False, bf16=True), target_scale_g=scaler.target_sd_g)
    assert all(v.dtype == torch.float32 for v in res.model.state_dict().values() if v.is_floating_point())
    pred = scaler.to_grams(predict_normalised(res.model, data.subset(te)))
    assert np.abs(pred - lvm[te]).mean() < 0.5 * np.abs(lvm[tr].mean() - lvm[te]).mean()


def test_deterministic_for_a_seed():
    data, _, _ = _problem(n=80)
    cfg = TrainConfig(epochs=3, batch_size=16, seed=7, progress=False, amplitude_jitter=0.1, shift_max_samples=3)
    a = fit_model(SMALL, data.subset(np.arange(60)), data.subset(np.arange(60, 80)), cfg)
    b = fit_model(SMALL, data.subset(np.arange(60)), data.subset(np.arange(60, 80)), cfg)
    assert [h["val_mae_g"] for h in a.history] == [h["val_mae_g"] for h in b.history]
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), k


def test_early_stopping_when_validation_does_not_improve():
    rng = np.random.default_rng(1)
    n = 64
    # pure-noise target: validation MAE cannot keep improving
    data = TensorData(rng.normal(size=(n, 12, 40)), np.zeros((n, 0)), np.zeros((n, 0)), rng.normal(size=n))
    res = fit_model(SMALL, data.subset(np.arange(48)), data.subset(np.arange(48, 64)),
                    TrainConfig(epochs=200, patience=3, lr=1e-2, progress=False))
    assert len(res.history) < 200
    assert len(res.history) - res.best_epoch == 3


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "plateau", "none"])
def test_schedules_run(schedule):
    data, _, _ = _problem(n=40)
    res = fit_model(SMALL, data.subset(np.arange(30)), data.subset(np.arange(30, 40)),
                    TrainConfig(epochs=2, schedule=schedule, progress=False))
    assert len(res.history) == 2
    if schedule == "cosine":
        assert res.history[1]["lr"] < res.history[0]["lr"]


def test_bad_inputs():
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="step")
    data, _, _ = _problem(n=20)
    with pytest.raises(ValueError, match="must not be empty"):
        fit_model(SMALL, data.subset(np.arange(20)), data.subset(np.arange(0)), TrainConfig(epochs=1, progress=False))


def test_shift_augmentation_is_a_per_sample_circular_roll():
    """The vectorised augmentation (one gather) equals np.roll of each sample by its own shift, with the
    shift and gain drawn from the generator in the order of the earlier per-sample loop."""
    from elvmass.training import _augment

    x = torch.arange(3 * 2 * 7, dtype=torch.float32).reshape(3, 2, 7)
    cfg = TrainConfig(shift_max_samples=3, amplitude_jitter=0.5, progress=False)
    out = _augment(x, cfg, torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    gain = (1.0 + 0.5 * torch.randn(3, 1, 1, generator=g)).numpy()
    shifts = torch.randint(-3, 4, (3,), generator=g).numpy()
    expect = np.stack([np.roll(x.numpy()[i] * gain[i], shifts[i], axis=-1) for i in range(3)])
    assert np.array_equal(out.numpy(), expect)
    assert len(set(shifts.tolist())) > 1  # the seed gives different shifts, so the test can tell


def test_device_option():
    data, _, _ = _problem(n=40)
    tr, va = data.subset(np.arange(30)), data.subset(np.arange(30, 40))
    cfg = TrainConfig(epochs=2, progress=False)
    a = fit_model(SMALL, tr, va, cfg, device="cpu")
    if not torch.cuda.is_available():
        b = fit_model(SMALL, tr, va, cfg, device="auto")  # auto = CPU here: the same numbers
        assert predict_normalised(a.model, va).tobytes() == predict_normalised(b.model, va, device="auto").tobytes()
        with pytest.raises(ValueError, match="no CUDA"):
            fit_model(SMALL, tr, va, cfg, device="cuda")
    with pytest.raises(ValueError, match="device must be"):
        fit_model(SMALL, tr, va, cfg, device="tpu")


def test_phase_timings_are_reported():
    data, _, _ = _problem(n=40)
    timings = {}
    fit_model(SMALL, data.subset(np.arange(30)), data.subset(np.arange(30, 40)), TrainConfig(epochs=2, progress=False),
              timings=timings)
    assert set(timings) == {"data", "forward", "backward", "optimiser", "validation", "bookkeeping"}
    assert all(v >= 0 for v in timings.values()) and timings["forward"] > 0 and timings["backward"] > 0


@pytest.mark.slow
def test_bench_train_exits_non_zero_on_a_missed_target():
    """benchmarks/bench_train.py is a check: an impossible target gives exit status 1, a trivial one 0."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    tiny = ["--no-fold", "--epochs", "1", "--repeats", "1", "--n-train", "64", "--n-val", "16", "--json"]

    def run(*extra):
        return subprocess.run([sys.executable, str(root / "benchmarks/bench_train.py"), *tiny, *extra],
                              env={**__import__("os").environ, "PYTHONPATH": str(root / "src")},
                              capture_output=True, text=True, timeout=600)

    assert run("--target", "1e9").returncode == 1
    assert run("--target", "0", "--plain-target", "0").returncode == 0
