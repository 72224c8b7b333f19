"""Gradient saliency of eLVMass-Net and its split into ECG segments x lead groups.

The paper's saliency is the absolute gradient of the predicted LV mass with respect to every input
sample of the single-beat view (Simonyan et al. 2014). Here the gradient is taken of the prediction in
grams (the network's normalised output times the training fold's target SD), so values are g per mV.

==========================  =================================================================  =========================
method                      saliency of sample (lead i, time t)                                reference
==========================  =================================================================  =========================
``gradient``                |d LVM / d x[i, t]|                                                Simonyan et al. 2014
``smoothgrad``              mean over 25 noisy copies (sigma 0.1 x the view's range) of |grad|   Smilkov et al. 2017
``integrated_gradients``    |(x - 0) * mean of grad along the straight path from zeros to x|   Sundararajan et al. 2017
==========================  =================================================================  =========================

Segments (from :meth:`elvmass.signal.ECGAnalysis.segment_masks`): PR = P onset -> QRS onset,
QRS = onset -> offset, ST-T = QRS offset -> T offset, TP = T offset -> window end plus window start ->
P onset. Lead groups: LL = limb leads I, II, III, aVR, aVL, aVF (rows 0-5), PL = V1-V6 (rows 6-11).

    >>> import numpy as np
    >>> sal = np.zeros((12, 10)); sal[7, 4] = 3.0; sal[1, 8] = 1.0
    >>> m = masks_from_fiducials({"p_on": 0, "qrs_on": 20, "qrs_off": 50, "t_off": 80}, 10, 100.0, 100.0)
    >>> s = segment_shares(sal, m)
    >>> s.pct["qrs"]["pl"], s.pct["tp"]["ll"], s.missing
    (75.0, 25.0, ())
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from elvmass.signal.analysis import SEGMENT_NAMES

SEGMENTS: tuple[str, ...] = tuple(SEGMENT_NAMES)  # ("pr", "qrs", "st_t", "tp")
LEAD_GROUP_ROWS: dict[str, tuple[int, ...]] = {"ll": tuple(range(6)), "pl": tuple(range(6, 12))}
METHODS: tuple[str, ...] = ("gradient", "smoothgrad", "integrated_gradients")
#: which fiducials bound each segment (a segment with an unknown boundary is reported missing)
SEGMENT_BOUNDS = {"pr": ("p_on", "qrs_on"), "qrs": ("qrs_on", "qrs_off"), "st_t": ("qrs_off", "t_off"),
                  "tp": ("t_off", "p_on")}


def _network(fitted):
    if not (hasattr(fitted, "model") and hasattr(fitted, "scaler") and hasattr(fitted, "inputs")):
        raise TypeError(f"saliency needs an eLVMass-Net fitted model (with .model, .scaler, .inputs); "
                        f"got {type(fitted).__name__}")
    return fitted.model


def gradient_saliency(fitted, data, rows, method: str = "gradient", *, batch_size: int = 64,
                      n_samples: int = 25, noise: float = 0.1, steps: int = 32, seed: int = 0) -> np.ndarray:
    """Absolute saliency (N, 12, L) in g per mV of the predicted LVM for ``rows`` of ``data``."""

    if method not in METHODS:
        raise ValueError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}")
    net = _network(fitted)
    t = fitted.inputs(data, rows)
    return saliency_of_inputs(net, float(fitted.scaler.target_sd_g), t.ecg, t.demographics, t.params, method,
                              batch_size=batch_size, n_samples=n_samples, noise=noise, steps=steps, seed=seed)


def saliency_of_inputs(net, scale_g: float, ecg, demographics, params, method: str = "gradient", *,
                       batch_size: int = 64, n_samples: int = 25, noise: float = 0.1, steps: int = 32,
                       seed: int = 0) -> np.ndarray:
    """The saliency of a network on already normalised inputs (see :func:`gradient_saliency`)."""
    import torch

    was_training = net.training
    net.eval()
    out = []
    try:
        for s in range(0, len(ecg), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(ecg[s:s + batch_size], np.float32))
            d = torch.from_numpy(np.ascontiguousarray(demographics[s:s + batch_size], np.float32))
            p = torch.from_numpy(np.ascontiguousarray(params[s:s + batch_size], np.float32))

            def f(xx, dd, pp):  # demographics/params go to Captum as additional_forward_args: it expands them
                return net(xx, dd, pp) * scale_g

            if method == "gradient":
                xx = x.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(f(xx, d, p).sum(), xx)
                out.append(g.abs().numpy())
            elif method == "smoothgrad":
                from captum.attr import NoiseTunnel, Saliency

                sd = float(noise * (x.amax() - x.amin()).clamp_min(1e-6))
                torch.manual_seed(seed)
                nt = NoiseTunnel(Saliency(f))
                a = nt.attribute(x, nt_type="smoothgrad", nt_samples=n_samples, stdevs=sd, abs=True,
                                 additional_forward_args=(d, p))
                out.append(a.detach().abs().numpy())
            else:
                from captum.attr import IntegratedGradients

                ig = IntegratedGradients(f)
                a = ig.attribute(x, baselines=torch.zeros_like(x), n_steps=steps, additional_forward_args=(d, p),
                                 internal_batch_size=max(len(x), 1) * 8)
                out.append(a.detach().abs().numpy())
    finally:
        net.train(was_training)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 12, 0), np.float32)


def masks_from_fiducials(fiducials_ms: dict, length: int, fs_hz: float, window_ms: float | None = None) -> dict:
    """Segment masks over a view of ``length`` samples from fiducials in ms from the window start (NaN =
    unknown); the same rule as :attr:`elvmass.signal.ECGAnalysis.segments_ms`."""
    end = length * 1000.0 / fs_hz if window_ms is None else float(window_ms)
    t_ms = np.arange(length) * 1000.0 / fs_hz
    f = {k: float(v) if v is not None else math.nan for k, v in fiducials_ms.items()}

    def seg(a, b):
        if math.isfinite(a) and math.isfinite(b) and b > a:
            return (t_ms >= max(a, 0.0)) & (t_ms < min(b, end))
        return np.zeros(length, bool)

    return {"pr": seg(f["p_on"], f["qrs_on"]), "qrs": seg(f["qrs_on"], f["qrs_off"]),
            "st_t": seg(f["qrs_off"], f["t_off"]), "tp": seg(f["t_off"], end) | seg(0.0, f["p_on"]),
            "_fiducials_ms": f}


def _missing(masks: dict, fiducials_ms: dict | None) -> tuple[str, ...]:
    if fiducials_ms is not None:
        bad = {k for k, v in fiducials_ms.items() if v is None or not math.isfinite(float(v))}
        return tuple(s for s in SEGMENTS if any(b in bad for b in SEGMENT_BOUNDS[s]))
    return tuple(s for s in SEGMENTS if not np.asarray(masks[s]).any())


@dataclass
class SegmentShares:
    """One ECG's saliency by segment x lead group: ``pct[segment][group]`` in % of the ECG's total
    (segments with an unknown boundary are 0 and named in ``missing``; ``unassigned_pct`` is the share
    that fell in no known segment, so the known cells plus it sum to 100)."""

    pct: dict[str, dict[str, float]]
    missing: tuple[str, ...] = ()
    unassigned_pct: float = 0.0
    total: float = 0.0
    flags: tuple[str, ...] = field(default_factory=tuple)

    def row(self) -> dict:
        d = {f"{s}_{g}": self.pct[s][g] for s in SEGMENTS for g in LEAD_GROUP_ROWS}
        d.update(total_ll=sum(self.pct[s]["ll"] for s in SEGMENTS), total_pl=sum(self.pct[s]["pl"] for s in SEGMENTS),
                 unassigned_pct=self.unassigned_pct, missing=";".join(self.missing))
        return d


def segment_shares(saliency, masks, fiducials_ms: dict | None = None) -> SegmentShares:
    """Split one ECG's saliency (12, L) by segment x lead group. ``masks``: an
    :class:`~elvmass.signal.ECGAnalysis` (its own fiducials) or a dict of boolean masks per segment."""
    sal = np.abs(np.asarray(saliency, float))
    if sal.ndim != 2 or sal.shape[0] != 12:
        raise ValueError(f"saliency must be (12, L), got {sal.shape}")
    n = sal.shape[1]
    if hasattr(masks, "segment_masks"):
        fiducials_ms = dict(masks.fiducials_ms)
        masks = masks.segment_masks(n)
    elif fiducials_ms is None and "_fiducials_ms" in masks:
        fiducials_ms = masks["_fiducials_ms"]
    missing = _missing(masks, fiducials_ms)
    total = float(sal.sum())
    pct = {s: {g: 0.0 for g in LEAD_GROUP_ROWS} for s in SEGMENTS}
    assigned = np.zeros(n, bool)
    for s in SEGMENTS:
        m = np.asarray(masks[s], bool)
        if s in missing:
            m = m & False
        m = m & ~assigned  # a sample counts once
        assigned |= m
        for g, rows in LEAD_GROUP_ROWS.items():
            pct[s][g] = 100.0 * float(sal[list(rows)][:, m].sum()) / total if total > 0 else 0.0
    unassigned = 100.0 * float(sal[:, ~assigned].sum()) / total if total > 0 else 0.0
    flags = tuple(f"segment_missing:{s}" for s in missing) + (("saliency_zero",) if total <= 0 else ())
    return SegmentShares(pct, missing, unassigned, total, flags)


def saliency_for_record(bundle, record, model: str | None = None, method: str = "gradient", *, analysis=None,
                        age_years=None, sex=None, height_cm=None, weight_kg=None) -> dict:
    """Saliency of one ECG record under a bundle's model (default: the model for the record's sex).

    Returns ``lvm_g``, ``model``, ``method``, ``lead_time`` (12 x L saliency over the beat view, g/mV),
    ``fs_hz``, ``segments`` (``{pr, qrs, st_t, tp}{ll, pl}`` in %), ``segment_shares`` (fraction of the
    total per segment, both lead groups), ``fiducials_ms``, ``missing`` and ``flags``.
    """
    import pandas as pd

    from elvmass.errors import ECGReadError
    from elvmass.features import PARAM_INPUTS, plausible_param, record_data
    from elvmass.signal.analysis import analyze_ecg

    inner = getattr(bundle, "bundle", bundle)  # a BatchingBundle wraps the bundle
    cfg = inner.signal_config
    p = record.patient
    sx = sex if sex is not None else p.sex
    name = model or inner.model_for_sex(sx)
    fitted = inner.fitted[name]
    a = analysis if analysis is not None else analyze_ecg(record, cfg)
    view = np.asarray(a.view, np.float32)
    path = record.source_path or "<record>"
    if view.shape[0] != 12 or not np.isfinite(view).all():
        raise ECGReadError(path, "no usable beat for saliency (" + (", ".join(a.flags) or "view not finite") + ")")
    dev = record.measurements.as_dict()
    params = {}
    for k in PARAM_INPUTS:
        v = dev.get(k)  # the same choice as elvmass.predict.predict_record
        if not plausible_param(k, v):
            v = a.measured.get(k)
            v = v if plausible_param(k, v) else None
        params[k] = v
    row = pd.DataFrame([{"age_years": age_years if age_years is not None else p.age_years, "sex": sx,
                         "height_cm": height_cm if height_cm is not None else p.height_cm,
                         "weight_kg": weight_kg if weight_kg is not None else p.weight_kg, **params}])
    data = record_data([record], row, analyses={cfg: [a]})
    sal = gradient_saliency(fitted, data, [0], method=method)[0]
    lvm = float(fitted.predict(data, np.array([0]))[0])
    flags = list(a.flags)
    if cfg.view != "single_beat" and cfg.view != "median_beat":
        flags.append(f"segments_not_defined_for_view:{cfg.view}")
    sh = segment_shares(sal, a)
    flags += list(sh.flags)
    seg_frac = {s: round((sh.pct[s]["ll"] + sh.pct[s]["pl"]) / 100.0, 4) for s in SEGMENTS}
    return {
        "lvm_g": lvm, "model": name, "method": method, "fs_hz": float(cfg.out_fs_hz),
        # plain lists (JSON-ready for the service), 4 significant digits
        "lead_time": [[float(f"{v:.4g}") for v in row] for row in sal],
        "view": [[round(float(v), 4) for v in row] for row in view],
        "segments": {s: {g: round(sh.pct[s][g], 2) for g in LEAD_GROUP_ROWS} for s in SEGMENTS},
        "segment_shares": seg_frac, "unassigned_pct": round(sh.unassigned_pct, 2),
        "fiducials_ms": {k: (None if not math.isfinite(float(v)) else round(float(v), 1)) for k, v in a.fiducials_ms.items()},
        "missing": list(sh.missing), "flags": flags,
    }
