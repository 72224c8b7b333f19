"""eLVMass-Net as a model family of the interface (:mod:`elvmass.models.base`): its spec (signal view,
architecture, training settings) and the fitted model (network + the training fold's scaler).

This module is the glue between the network (:mod:`elvmass.models.elvmassnet`) and its fit loop
(:mod:`elvmass.training`), so it sits above both.

=============  ===============================================================================
spec field     meaning
=============  ===============================================================================
``signal``     the :class:`~elvmass.signal.SignalConfig` of the input view (single beat, full, crop;
               lead grouping is the network's ``lead_groups``)
``net``        :class:`~elvmass.models.elvmassnet.ElvmassNetConfig` (encoders, inputs, head)
``train``      :class:`~elvmass.training.TrainConfig` (epochs, batch, schedule, early stopping)
``seed``       seeds initialisation and batching; fold ``k`` trains with ``seed + k``
=============  ===============================================================================

    >>> spec = ElvmassNetSpec(name="elvmassnet")
    >>> spec_from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from elvmass.features import FeatureScaler
from elvmass.models.base import FittedModel, ModelSpec, register, spec_from_dict  # noqa: F401 (doctest)
from elvmass.models.elvmassnet import ElvmassNet, ElvmassNetConfig
from elvmass.signal.config import SignalConfig
from elvmass.training import TensorData, TrainConfig, fit_model, predict_normalised


@register
@dataclass(frozen=True)
class ElvmassNetSpec(ModelSpec):
    """eLVMass-Net with a given view, grouping, inputs and training settings."""

    family = "elvmassnet"
    signal: SignalConfig = field(default_factory=SignalConfig)
    net: ElvmassNetConfig = field(default_factory=ElvmassNetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def signals(self) -> tuple:
        return (self.signal,)

    def fit(self, data, split, *, device: str = "cpu", progress: bool = False, label: str = "") -> "FittedElvmassNet":
        """Fit on ``split.train`` (scaler fitted there too), select the epoch on ``split.val``."""
        y_g = data.lvm_g
        scalars = data.scalars
        net = self.net
        scaler = FeatureScaler.fit(scalars.iloc[split.train], y_g[split.train], net.demographic_inputs, net.param_inputs)
        demo, par, _ = scaler.transform(scalars)
        tensors = TensorData(data.views(self.signal), demo, par, scaler.normalise_target(y_g))
        train = dataclasses.replace(self.train, seed=self.seed + max(int(split.fold), 0), progress=progress)
        res = fit_model(net, tensors.subset(split.train), tensors.subset(split.val), train,
                        target_scale_g=scaler.target_sd_g, description=label or self.name)
        info = {"n_train": int(len(split.train)), "n_val": int(len(split.val)), "best_epoch": res.best_epoch,
                "val_mae_g": round(res.best_val_mae_g, 3), "epochs_run": len(res.history),
                "elapsed_s": round(res.elapsed_s, 1)}
        return FittedElvmassNet(self, res.model, scaler, res.history, info)

    @classmethod
    def _field_from_plain(cls, name, value):
        if name == "signal":
            return value if isinstance(value, SignalConfig) else SignalConfig.from_dict(value)
        if name == "net":
            return value if isinstance(value, ElvmassNetConfig) else ElvmassNetConfig.from_dict(value)
        if name == "train":
            return value if isinstance(value, TrainConfig) else TrainConfig(**value)
        return super()._field_from_plain(name, value)

    @classmethod
    def load_fitted(cls, spec, arrays, meta) -> "FittedElvmassNet":
        import torch

        net = ElvmassNet(spec.net)
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
        net.eval()
        return FittedElvmassNet(spec, net, FeatureScaler.from_dict(meta["scaler"]), [], dict(meta.get("info", {})))


class FittedElvmassNet(FittedModel):
    """A trained network and its training fold's scaler. ``onnx_session`` (set by the bundle's
    ``engine="onnx"``) runs the exported graph with onnxruntime instead of torch."""

    def __init__(self, spec: ElvmassNetSpec, model: ElvmassNet, scaler: FeatureScaler, history=None, info=None):
        self.spec, self.model, self.scaler = spec, model, scaler
        self.history = list(history or [])
        self.info = dict(info or {})
        self.onnx_session = None

    def inputs(self, data, rows) -> TensorData:
        """The normalised model inputs of ``rows`` (imputed scalars filled with training medians)."""
        rows = np.asarray(rows, dtype=int)
        demo, par, _ = self.scaler.transform(data.scalars.iloc[rows])
        return TensorData(data.views(self.spec.signal)[rows], demo, par, np.zeros(len(rows), np.float32))

    def imputed(self, data, rows) -> list[tuple[str, ...]]:
        """Per row, the scalar inputs that were missing and filled with the training medians."""
        return self.scaler.transform(data.scalars.iloc[np.asarray(rows, dtype=int)])[2]

    def predict(self, data, rows) -> np.ndarray:
        t = self.inputs(data, rows)
        if self.onnx_session is not None:
            out = self._run_onnx(t)
        else:
            out = predict_normalised(self.model, t)
        return self.scaler.to_grams(out)

    def _run_onnx(self, t: TensorData) -> np.ndarray:
        sess = self.onnx_session
        feeds = {"ecg": t.ecg}
        names = {i.name for i in sess.get_inputs()}
        if "demographics" in names:
            feeds["demographics"] = t.demographics
        if "params" in names:
            feeds["params"] = t.params
        return sess.run(None, feeds)[0].reshape(-1)

    def state(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {k: v.detach().contiguous().cpu().numpy().copy() for k, v in self.model.state_dict().items()}
        return arrays, {"scaler": self.scaler.to_dict(), "info": self.info}

    def export_onnx(self, file) -> None:
        """Write the network as ONNX: inputs ``ecg`` (B, 12, L) and, where used, ``demographics``
        (B, d) and ``params`` (B, p), already normalised; output ``lvm_normalised`` (B,)."""
        import warnings

        import torch

        cfg = self.model.config
        args = [torch.zeros(1, 12, self.spec.signal.view_length)]
        names = ["ecg"]
        if cfg.demographic_inputs:
            args.append(torch.zeros(1, len(cfg.demographic_inputs)))
            names.append("demographics")
        else:
            args.append(None)
        if cfg.param_inputs:
            args.append(torch.zeros(1, len(cfg.param_inputs)))
            names.append("params")
        axes = {n: {0: "batch"} for n in names + ["lvm_normalised"]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(self.model, tuple(args), file, input_names=names, output_names=["lvm_normalised"],
                              dynamic_axes=axes, dynamo=False, opset_version=17)
