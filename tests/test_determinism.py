"""Same seed, same numbers on one machine (CPU): bit-identical predictions from two fits in one
process and from a fit in a fresh process. (Across machines see the README's determinism note and
``benchmarks/bench_determinism.py``.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from elvmass.models.elvmassnet import ElvmassNetConfig
from elvmass.training import TensorData, TrainConfig, fit_model, predict_normalised

NET = ElvmassNetConfig(channels=(8, 8), kernel_size=5, stride=2, ecg_embed_dim=16, scalar_hidden=4, head_hidden=(16,),
                       dropout=0.1, head_dropout=0.1, demographic_inputs=("age_years", "sex_male"), param_inputs=())


def fit_and_predict(seed: int) -> np.ndarray:
    """A small fit with dropout, shift and gain augmentation and a one-cycle schedule; test predictions."""
    rng = np.random.default_rng(0)
    n = 96
    x = rng.normal(0, 0.1, (n, 12, 80)).astype(np.float32)
    z = rng.normal(size=n)
    x[:, 10, 30:40] += z[:, None]
    data = TensorData(x, rng.normal(size=(n, 2)), np.zeros((n, 0)), z)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=3e-3, schedule="onecycle", shift_max_samples=4, amplitude_jitter=0.1,
                      seed=seed, progress=False)
    res = fit_model(NET, data.subset(np.arange(64)), data.subset(np.arange(64, 80)), cfg)
    return predict_normalised(res.model, data.subset(np.arange(80, 96)))


def test_same_seed_twice_in_one_process_is_bit_identical():
    a, b = fit_and_predict(5), fit_and_predict(5)
    assert a.dtype == np.float32 and a.tobytes() == b.tobytes()
    assert fit_and_predict(6).tobytes() != a.tobytes()  # the seed does reach the fit


def test_same_seed_in_another_process_is_bit_identical(tmp_path):
    out = tmp_path / "pred.npy"
    here = Path(__file__).resolve().parent
    src = here.parent / "src"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(here), os.environ.get("PYTHONPATH", "")]))
    code = f"import numpy as np, test_determinism as t; np.save({str(out)!r}, t.fit_and_predict(5))"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300)
    assert np.load(out).tobytes() == fit_and_predict(5).tobytes()
