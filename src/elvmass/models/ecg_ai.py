"""ECG-AI (Tison et al., "Automated and interpretable patient ECG profiles for disease detection,
tracking, and discovery", Circ Cardiovasc Qual Outcomes 2019) as a model family: gradient-boosted trees
on the ECG profile.

The profile (:mod:`elvmass.segment.profile`, 525 values: durations, amplitudes, areas and intervals per
lead and global) comes from the segmentation model shipped with elvmass (a CNN trained on LUDB + HMM,
:mod:`elvmass.segment`), run on the band-passed 10-s ECG at 250 Hz (``SignalConfig(view="full",
out_fs_hz=250)``). Trees: LightGBM (``lightgbm``) regression of LV mass (g), L2 loss, early stopping on the
split's validation rows (at most ``n_estimators`` trees), one thread, seeded (deterministic).

==============  ==================================================================
``setting``     inputs
==============  ==================================================================
``original``    the ECG profile alone (as ECG-AI)
``all``         profile + demographics (age, sex, height, weight, BMI) + the ECG parameters
                eLVMass-Net takes (QRS duration, P / R / T axis)
==============  ==================================================================

A fitted model is stored in bundles as the booster's text dump inside the JSON meta (never a pickle).

    >>> spec = EcgAiSpec(setting="all")
    >>> spec.name, spec_from_dict(spec.to_dict()) == spec
    ('ecg_ai_all', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from elvmass.features import _signal_key, scalar_matrix
from elvmass.models.base import FittedModel, ModelSpec, register, spec_from_dict  # noqa: F401 (doctest)
from elvmass.signal.config import SignalConfig

SETTINGS = ("original", "all")
SCALAR_INPUTS = ("age_years", "sex_male", "height_cm", "weight_kg", "bmi", "qrs_ms", "p_axis_deg", "r_axis_deg", "t_axis_deg")
PROFILE_SIGNAL = SignalConfig(view="full", out_fs_hz=250.0)

#: ECG profiles per chunk of rows in one job of :meth:`EcgAiSpec.prepare` (about 12 s of one core)
PROFILE_CHUNK_ROWS = 100


def _profile_key(signal: SignalConfig) -> str:
    return "ecg_ai_profile:" + _signal_key(signal)


def profile_chunk(views: np.ndarray, fs_hz: float) -> np.ndarray:
    """(n, 525) ECG profiles of (n, 12, L) views, on one torch thread (the same numbers in any process)."""
    import torch

    from elvmass.segment import load_segmenter
    from elvmass.segment.profile import profile_matrix

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return profile_matrix(views, fs_hz, load_segmenter())
    finally:
        torch.set_num_threads(threads)


def cohort_profiles(data, signal: SignalConfig = PROFILE_SIGNAL, map_fn=map) -> np.ndarray:
    """(N, 525) ECG profiles of every row of ``data``, computed once per data object and signal
    (:meth:`CohortData.derived`), in chunks of :data:`PROFILE_CHUNK_ROWS` rows mapped with ``map_fn``."""

    def compute(d):
        views = d.views(signal)
        if not len(views):
            from elvmass.segment.profile import PROFILE_NAMES

            return np.zeros((0, len(PROFILE_NAMES)))
        chunks = [views[i:i + PROFILE_CHUNK_ROWS] for i in range(0, len(views), PROFILE_CHUNK_ROWS)]
        return np.concatenate(list(map_fn(partial(profile_chunk, fs_hz=signal.out_fs_hz), chunks)))

    return data.derived(_profile_key(signal), compute)


def scalar_inputs(data) -> np.ndarray:
    return scalar_matrix(data.scalars, SCALAR_INPUTS)


@register
@dataclass(frozen=True)
class EcgAiSpec(ModelSpec):
    """ECG-AI: LightGBM on the ECG profile (``setting`` "original") or profile + scalars ("all")."""

    family = "ecg_ai"
    setting: str = "original"
    signal: SignalConfig = field(default_factory=lambda: PROFILE_SIGNAL)
    n_estimators: int = 500
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 10
    colsample: float = 0.5

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"ecg_ai setting must be one of {SETTINGS}, got {self.setting!r}")
        if not self.name:
            object.__setattr__(self, "name", f"ecg_ai_{self.setting}")

    @property
    def signals(self) -> tuple:
        return (self.signal,)

    def prepare(self, data, map_fn=map) -> None:
        """The ECG profiles of every row, once for all folds (the segmentation network is the costly part)."""
        cohort_profiles(data, self.signal, map_fn)

    def inputs(self, data) -> np.ndarray:
        prof = cohort_profiles(data, self.signal)
        return prof if self.setting == "original" else np.column_stack([prof, scalar_inputs(data)])

    def fit(self, data, split, *, device: str = "cpu", progress: bool = False, label: str = "") -> "FittedEcgAi":
        import lightgbm as lgb

        x = self.inputs(data)
        y = data.lvm_g
        params = {"objective": "regression", "learning_rate": self.learning_rate, "num_leaves": self.num_leaves,
                  "min_child_samples": self.min_child_samples, "feature_fraction": self.colsample,
                  "bagging_fraction": 0.8, "bagging_freq": 1, "seed": self.seed + max(int(split.fold), 0),
                  "deterministic": True, "num_threads": 1, "verbose": -1}
        train = lgb.Dataset(x[split.train], y[split.train], free_raw_data=False)
        callbacks, valid = [], []
        if len(split.val):
            valid = [lgb.Dataset(x[split.val], y[split.val], reference=train)]
            callbacks.append(lgb.early_stopping(50, verbose=False))
        booster = lgb.train(params, train, num_boost_round=self.n_estimators, valid_sets=valid, callbacks=callbacks)
        info = {"n_train": int(len(split.train)), "n_val": int(len(split.val)),
                "best_iteration": int(booster.best_iteration or booster.current_iteration()), "n_features": int(x.shape[1])}
        return FittedEcgAi(self, booster, info)

    @classmethod
    def _field_from_plain(cls, name, value):
        if name == "signal":
            return value if isinstance(value, SignalConfig) else SignalConfig.from_dict(value)
        return super()._field_from_plain(name, value)

    @classmethod
    def load_fitted(cls, spec, arrays, meta) -> "FittedEcgAi":
        import lightgbm as lgb

        return FittedEcgAi(spec, lgb.Booster(model_str=meta["booster"]), dict(meta.get("info", {})))


class FittedEcgAi(FittedModel):
    def __init__(self, spec: EcgAiSpec, booster, info=None) -> None:
        self.spec, self.booster = spec, booster
        self.history, self.info = [], dict(info or {})

    def predict(self, data, rows) -> np.ndarray:
        x = self.spec.inputs(data)[np.asarray(rows, dtype=int)]
        it = self.info.get("best_iteration") or None
        return np.asarray(self.booster.predict(x, num_iteration=it, num_threads=1), dtype=float)

    def state(self):
        return {}, {"booster": self.booster.model_to_string(), "info": self.info}


def _register_recipes() -> None:
    from elvmass.models.registry import register_recipe

    for setting in SETTINGS:
        def recipe(preset, setting=setting):
            size = {"n_estimators": 100} if getattr(preset, "name", "") == "quick" else {}
            return EcgAiSpec(name=f"ecg_ai_{setting}", setting=setting, seed=preset.seed, **size)

        register_recipe(f"ecg_ai_{setting}", group="ecg_ai")(recipe)


_register_recipes()
