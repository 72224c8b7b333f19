"""Figures: one ECG's 12-lead beat with its saliency as a heat map behind each lead (the paper's
Figure 4 panels), and Figure 4 itself (men and women x low, middle, high LVM).

Heat map: per ECG, the saliency divided by its maximum (so panels compare where, not how much);
dashed lines at P onset, QRS onset, QRS offset and T offset (the segment boundaries).
"""

from __future__ import annotations

import math

import numpy as np

from elvmass.record import LEADS

FIDUCIAL_STYLE = {"p_on": "P on", "qrs_on": "QRS on", "qrs_off": "QRS off", "t_off": "T off"}


def _draw_ecg(fig, outer, view, sal, fs_hz, fiducials_ms, title):
    import matplotlib.pyplot as plt  # noqa: F401

    gs = outer.subgridspec(6, 2, hspace=0.15, wspace=0.05)
    L = view.shape[-1]
    t_ms = np.arange(L) * 1000.0 / fs_hz
    smax = float(np.max(sal)) or 1.0
    lo, hi = float(np.nanmin(view)), float(np.nanmax(view))
    pad = 0.05 * (hi - lo or 1.0)
    axes = []
    for k in range(12):
        col, row = divmod(k, 6)
        ax = fig.add_subplot(gs[row, col])
        ax.imshow(sal[k][None, :] / smax, aspect="auto", cmap="Oranges", vmin=0, vmax=1,
                  extent=(t_ms[0], t_ms[-1], lo - pad, hi + pad), origin="lower", alpha=0.9)
        ax.plot(t_ms, view[k], color="black", lw=0.8)
        for key in FIDUCIAL_STYLE:
            v = (fiducials_ms or {}).get(key)
            if v is not None and math.isfinite(float(v)):
                ax.axvline(float(v), color="#2f6db5", ls="--", lw=0.6)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_yticks([])
        ax.text(0.01, 0.85, LEADS[k], transform=ax.transAxes, fontsize=7, weight="bold")
        if row < 5:
            ax.set_xticks([])
        else:
            ax.tick_params(labelsize=6)
            ax.set_xlabel("ms", fontsize=6)
        axes.append(ax)
    axes[0].set_title(title, fontsize=8, loc="left")
    return axes


def plot_saliency(items, path, *, ncols: int | None = None, suptitle: str | None = None):
    """PNG of one or more ECGs. ``items``: dicts with ``view`` (12, L mV), ``lead_time`` (12, L),
    ``fs_hz``, ``fiducials_ms`` and ``title`` (as :func:`saliency_for_record` returns, plus a title)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from elvmass.atomic import save_figure

    items = list(items)
    if not items:
        raise ValueError("nothing to plot")
    ncols = ncols or min(3, len(items))
    nrows = math.ceil(len(items) / ncols)
    fig = plt.figure(figsize=(4.2 * ncols, 5.0 * nrows))
    gs = fig.add_gridspec(nrows, ncols, hspace=0.3, wspace=0.12)
    for i, it in enumerate(items):
        _draw_ecg(fig, gs[i // ncols, i % ncols], np.asarray(it["view"], float), np.abs(np.asarray(it["lead_time"], float)),
                  float(it["fs_hz"]), it.get("fiducials_ms"), it.get("title", ""))
    fig.suptitle(suptitle or "Saliency (orange, per ECG scaled to its maximum); dashed: P on, QRS on/off, T off",
                 fontsize=9)
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def plot_figure_4(panels, path, *, synthetic: bool = False):
    """Figure 4: ``panels`` = {"M": [low, mid, high], "F": [low, mid, high]} of plot items; rows men,
    women; columns low, middle, high LVM. ``synthetic``: the cohort came from ``elvmass synth`` (the
    title then says it shows the pipeline, not patients)."""
    items = []
    for sex, label in (("M", "men"), ("F", "women")):
        for it, t in zip(panels.get(sex, []), ("low", "middle", "high")):
            items.append({**it, "title": f"{label}, {t} LVM: " + it.get("title", "")})
    note = " (synthetic cohort: shows the pipeline, not patients)" if synthetic else ""
    return plot_saliency(items, path, ncols=3, suptitle="Figure 4: saliency in men (top) and women (bottom), "
                         f"low / middle / high LVM{note}")


def figure_4(data, fold_models, cases, path, *, method: str = "gradient"):
    """Figure 4 from a study's out-of-fold saliency: for the male (``M``) and female (``F``) model
    populations, the cases with the lowest, median and highest measured LVM, each explained by the fold
    model that had it as a test case. ``cases`` as :func:`~elvmass.explain.fold_saliency` returns;
    ``fold_models`` the same ``(name, fold, fitted, test_rows)`` items. Returns the path, or None when
    neither population has cases."""
    from elvmass.explain.saliency import gradient_saliency

    by_key = {(name, int(fold)): fitted for name, fold, fitted, _ in fold_models}
    panels = {}
    for sex in ("M", "F"):
        sub = cases[cases.population == sex].sort_values("lvm_g")
        if len(sub) < 3:
            continue
        picks = [sub.iloc[0], sub.iloc[len(sub) // 2], sub.iloc[-1]]
        items = []
        for c in picks:
            fitted = by_key[(c.model, int(c.fold))]
            sig = fitted.spec.signal
            r = int(c.row)
            sal = gradient_saliency(fitted, data, [r], method=method)[0]
            items.append({"view": data.views(sig)[r], "lead_time": sal, "fs_hz": sig.out_fs_hz,
                          "fiducials_ms": data.analyses(sig)[r].fiducials_ms, "title": f"{c.lvm_g:.0f} g"})
        panels[sex] = items
    if not panels:
        return None
    from elvmass.cohort.provenance import looks_synthetic

    return plot_figure_4(panels, path, synthetic=looks_synthetic(data.manifest))
