"""Demographics-only comparator: gradient boosting on age, sex, height, weight, BMI and BSA.

It answers the question every ECG model must face: how much does the ECG add over what the
patient's body size and sex already say about LV mass? It runs in the same cross-validation
protocol as eLVMass-Net (same test folds) and appears in every study table.

It is a study comparator only: model bundles hold torch weights (safetensors) and never a
pickled scikit-learn object, so this model is refitted inside each study rather than saved.

    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"age_years": [50, 60, 70, 40] * 10, "sex": ["M", "F"] * 20,
    ...                    "height_cm": [170, 160, 180, 165] * 10, "weight_kg": [80, 60, 90, 70] * 10})
    >>> y = np.where(df["sex"] == "M", 150.0, 110.0)
    >>> m = DemographicsRegressor().fit(df, y)
    >>> np.round(m.predict(df.head(2)))
    array([150., 110.])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from elvmass.models.base import FittedModel, ModelSpec, register

FEATURES: tuple[str, ...] = ("age_years", "sex_male", "height_cm", "weight_kg", "bmi", "bsa_m2")


def demographic_features(df: pd.DataFrame) -> np.ndarray:
    """(N, 6) array of age, sex (1 = male, 0 = female, NaN unknown), height, weight, BMI, BSA (Mosteller).

    BMI and BSA are computed from height and weight when the frame does not hold them.
    """
    def col(name):
        return pd.to_numeric(df[name], errors="coerce").to_numpy(float) if name in df.columns else np.full(len(df), np.nan)

    sex = df["sex"].astype(object).to_numpy() if "sex" in df.columns else np.full(len(df), None, object)
    sex_male = np.array([1.0 if s == "M" else 0.0 if s == "F" else np.nan for s in sex])
    h, w = col("height_cm"), col("weight_kg")
    bmi = col("bmi") if "bmi" in df.columns else w / (h / 100.0) ** 2
    bsa = col("bsa_m2") if "bsa_m2" in df.columns else np.sqrt(h * w / 3600.0)
    return np.column_stack([col("age_years"), sex_male, h, w, bmi, bsa])


@dataclass(frozen=True)
class DemographicsConfig:
    """Gradient boosting settings (scikit-learn HistGradientBoostingRegressor, absolute-error loss)."""

    max_iter: int = 200
    learning_rate: float = 0.05
    max_depth: int = 3
    min_samples_leaf: int = 20
    seed: int = 0


class DemographicsRegressor:
    """LVM (g) from demographics alone. Missing values are handled natively by the trees."""

    def __init__(self, config: DemographicsConfig = DemographicsConfig()) -> None:
        self.config = config
        self._model = None

    def fit(self, df: pd.DataFrame, lvm_g) -> "DemographicsRegressor":
        from sklearn.ensemble import HistGradientBoostingRegressor

        c = self.config
        self._model = HistGradientBoostingRegressor(
            loss="absolute_error", max_iter=c.max_iter, learning_rate=c.learning_rate, max_depth=c.max_depth,
            min_samples_leaf=c.min_samples_leaf, early_stopping=False, random_state=c.seed,
        )
        from threadpoolctl import threadpool_limits

        # a few thousand rows: one thread is fastest and avoids OpenMP spin-waiting on a busy CPU
        with threadpool_limits(1):
            self._model.fit(demographic_features(df), np.asarray(lvm_g, float))
        return self

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("fit the demographics model before predicting")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            return self._model.predict(demographic_features(df))


@register
@dataclass(frozen=True)
class DemographicsSpec(ModelSpec):
    """The demographics comparator as a model family: fitted on the training and validation rows of
    a split (it has no early stopping to feed). Not bundleable: the fitted trees exist only as a
    scikit-learn object, and bundles never hold pickles."""

    family = "demographics"
    bundleable = False
    config: DemographicsConfig = field(default_factory=DemographicsConfig)

    def fit(self, data, split, *, device: str = "cpu", progress: bool = False, label: str = "") -> "FittedDemographics":
        rows = np.concatenate([split.train, split.val])
        reg = DemographicsRegressor(self.config).fit(data.manifest.iloc[rows], data.lvm_g[rows])
        return FittedDemographics(self, reg)

    @classmethod
    def _field_from_plain(cls, name, value):
        if name == "config" and isinstance(value, dict):
            return DemographicsConfig(**value)
        return super()._field_from_plain(name, value)


class FittedDemographics(FittedModel):
    def __init__(self, spec: DemographicsSpec, regressor: DemographicsRegressor) -> None:
        self.spec, self.regressor = spec, regressor
        self.history, self.info = [], {}

    def predict(self, data, rows) -> np.ndarray:
        return self.regressor.predict(data.manifest.iloc[np.asarray(rows, dtype=int)])
