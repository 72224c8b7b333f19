"""The one interface every model family implements, and the registry that finds families by name.

The protocol (:mod:`elvmass.experiments.protocol`), the experiments, the model bundle and
``predict`` never name a model family; they hold :class:`ModelSpec` objects and call

=====================================  =========================================================
call                                   returns
=====================================  =========================================================
``spec.fit(data, split)``              a :class:`FittedModel` trained on ``split.train`` (``split.val``
                                       for early stopping / model selection where the family uses it)
``fitted.predict(data, rows)``         LV mass in grams for ``rows`` of ``data``, shape ``(len(rows),)``
``fitted.state()``                     ``(arrays, meta)``: NumPy arrays (saved as safetensors) and a
                                       JSON-able dict; what a bundle stores (never a pickle)
``Spec.load_fitted(spec, arrays, meta)``  the fitted model back from a bundle
=====================================  =========================================================

``data`` is an :class:`elvmass.features.CohortData`: the usable manifest rows, their scalar inputs
(demographics and ECG parameters) and, per signal configuration a spec asks for in ``signals``, the
ECG views and analyses. A spec is a frozen dataclass (its config); ``to_dict``/``spec_from_dict``
round-trip it through JSON. Families register with :func:`register`; :func:`families` lists them.

    >>> import numpy as np, pandas as pd
    >>> from dataclasses import dataclass
    >>> from elvmass.evaluate.splits import Split
    >>> @register
    ... @dataclass(frozen=True)
    ... class MeanSpec(ModelSpec):
    ...     family = "doc_mean"
    ...     def fit(self, data, split, **kw):
    ...         return MeanFitted(self, float(np.mean(data.lvm_g[split.train])))
    >>> class MeanFitted(FittedModel):
    ...     def __init__(self, spec, mean_g):
    ...         self.spec, self.mean_g = spec, mean_g
    ...     def predict(self, data, rows):
    ...         return np.full(len(rows), self.mean_g)
    >>> from elvmass.features import CohortData
    >>> data = CohortData.from_frame(pd.DataFrame({"lvm_g": [100.0, 120.0, 140.0], "sex": ["M", "F", "M"]}))
    >>> spec = spec_from_dict({"family": "doc_mean", "name": "mean"})
    >>> spec.fit(data, Split(0, np.array([0, 1]), np.array([0]), np.array([2]))).predict(data, np.array([2]))
    array([110.])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

_FAMILIES: dict[str, type["ModelSpec"]] = {}
#: modules holding the built-in families (imported on first use of the registry)
BUILTIN_FAMILY_MODULES: tuple[str, ...] = (
    "elvmass.models.elvmassnet_spec", "elvmass.models.demographics", "elvmass.models.lvm_ai",
    "elvmass.models.ecg_ai", "elvmass.models.criteria",
)


@dataclass(frozen=True)
class ModelSpec:
    """A model family's frozen configuration. Subclasses set ``family`` and implement :meth:`fit`.

    ``name`` is the model's row name in results (``elvmassnet``, ``lvm_ai_original``...);
    ``seed`` seeds its fit (each fold adds its number, so every (model, fold) task is seeded by
    what it is, not by the order tasks run in).
    """

    family: ClassVar[str] = ""
    name: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.family)

    @property
    def signals(self) -> tuple:
        """The signal configurations (:class:`elvmass.signal.SignalConfig`) whose views it needs."""
        return ()

    #: whether a fitted model can be stored in a bundle (safetensors + JSON, never pickle)
    bundleable: ClassVar[bool] = True

    def prepare(self, data, map_fn=map) -> None:
        """Compute, once for all folds, the per-row inputs every fold of this spec shares and that its
        views alone do not give (e.g. ECG-AI's profiles), into ``data`` (:meth:`CohortData.derived`).

        ``map_fn(fn, chunks)`` maps a picklable one-argument function over chunks of work and returns
        the results in order: :func:`map` by default; a runner passes one that runs on its engine (the
        Dask runner: the cluster's workers), so the work is neither repeated per worker nor done on one
        core. Families whose inputs are their views need nothing (the default)."""

    def fit(self, data, split, *, device: str = "cpu", progress: bool = False, label: str = "") -> "FittedModel":
        """Train on ``split.train`` (and ``split.val`` as the family uses it); ``label`` names the task
        in progress output."""
        raise NotImplementedError(f"{type(self).__name__}.fit")

    @classmethod
    def load_fitted(cls, spec: "ModelSpec", arrays: dict[str, np.ndarray], meta: dict) -> "FittedModel":
        raise NotImplementedError(f"model family {cls.family!r} cannot be loaded from a bundle")

    def to_dict(self) -> dict:
        d = {"family": self.family}
        for f in dataclasses.fields(self):
            d[f.name] = _to_plain(getattr(self, f.name))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelSpec":
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(names) - {"family"})
        if unknown:
            raise ValueError(f"unknown {cls.family} spec keys {unknown}; known: {sorted(names)}")
        return cls(**{k: cls._field_from_plain(k, v) for k, v in d.items() if k in names})

    @classmethod
    def _field_from_plain(cls, name: str, value):
        """Turn a JSON value back into the field's type (override for nested configs)."""
        return tuple(_to_tuple(v) for v in value) if isinstance(value, list) else value


class FittedModel:
    """A trained model: ``predict(data, rows) -> lvm_g``; ``state()`` for bundles."""

    spec: ModelSpec
    history: list[dict] = []
    info: dict = {}

    def predict(self, data, rows) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        raise NotImplementedError(f"model family {self.spec.family!r} cannot be saved in a bundle")


def _to_plain(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return v.to_dict() if hasattr(v, "to_dict") else dataclasses.asdict(v)
    if isinstance(v, tuple):
        return [_to_plain(x) for x in v]
    return v


def _to_tuple(v):
    return tuple(_to_tuple(x) for x in v) if isinstance(v, list) else v


def register(spec_class: type[ModelSpec]) -> type[ModelSpec]:
    """Class decorator: make a family known by its ``family`` name (last registration wins)."""
    if not spec_class.family:
        raise ValueError(f"{spec_class.__name__} has no family name")
    _FAMILIES[spec_class.family] = spec_class
    return spec_class


def families() -> dict[str, type[ModelSpec]]:
    """Every registered family (the built-in ones are imported on first call)."""
    import importlib

    for mod in BUILTIN_FAMILY_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a family module that exists but fails to import is a real error
                raise
    return dict(_FAMILIES)


def spec_from_dict(d: dict) -> ModelSpec:
    """The spec a ``to_dict()`` came from; ``d["family"]`` picks the class."""
    fam = d.get("family")
    known = families()
    if fam not in known:
        raise ValueError(f"unknown model family {fam!r}; known: {', '.join(sorted(known))}")
    return known[fam].from_dict(d)
