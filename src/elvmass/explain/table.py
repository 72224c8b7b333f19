"""Table 3 of the paper: saliency by LVM tertile, ECG segment and lead group, per model population.

``cases``: one row per (model, ECG) with ``population`` (e.g. ``all``, ``M``, ``F``), ``lvm_g`` (the
measured LVM the tertiles are cut on) and the per-ECG shares of :meth:`SegmentShares.row`
(``pr_ll`` ... ``tp_pl``). Tertile cut-offs are the 1/3 and 2/3 quantiles of ``lvm_g`` within each
population (written into the table). Each cell is the mean % over that cell's cases; the paper's
version (5 cases per tertile) is drawn with ``numpy.random.default_rng(seed)``.

    >>> import pandas as pd
    >>> rows = [dict(population="all", lvm_g=g, **{f"{s}_{l}": (100.0 if (s, l) == ("qrs", "pl") else 0.0)
    ...         for s in SEGMENTS for l in ("ll", "pl")}) for g in range(90, 180, 10)]
    >>> t = saliency_table(pd.DataFrame(rows))
    >>> float(t.loc[("all", "all", "QRS"), "T1_PL"]), float(t.loc[("all", "all", "Total"), "T3_LL"])
    (100.0, 0.0)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from elvmass.explain.saliency import LEAD_GROUP_ROWS, SEGMENTS, gradient_saliency, segment_shares

ROW_LABELS = {"pr": "PR", "qrs": "QRS", "st_t": "ST-T", "tp": "TP"}
TERTILES = ("T1", "T2", "T3")


class FoldModels(list):
    """Collects ``(name, fold, fitted, test_rows)`` from the protocol: pass ``collector.on_fitted`` to
    ``functools.partial(elvmass.experiments.protocol.serial_runner, on_fitted=...)`` as the runner, then
    ``fold_saliency(data, collector)``. Keeps only models with a gradient (networks)."""

    def on_fitted(self, task, fitted) -> None:
        if hasattr(fitted, "model") and hasattr(fitted, "inputs"):
            self.append((task.entry.name, int(task.split.fold), fitted, np.asarray(task.split.test)))


def fold_saliency(data, fold_models, *, signal=None, method: str = "gradient", population=None,
                  masks=None) -> pd.DataFrame:
    """Saliency shares of each fold's model on its own out-of-fold test rows.

    ``fold_models``: iterable of ``(name, fold, fitted, test_rows)`` (or objects with those attributes,
    e.g. a protocol :class:`FoldResult` with a ``fitted`` attribute). ``population`` maps a model name to
    its population label (default: ``M``/``F`` for names ending ``_male``/``_female``, else ``all``).
    Models that are not networks (no gradient) are skipped. One row per (model, test case).
    ``masks``: segment masks for every row, for a cohort without ECG files (generated views; else each
    ECG's own fiducials are used).
    """
    out = []
    lvm = data.lvm_g
    for item in fold_models:
        if isinstance(item, tuple):
            name, fold, fitted, rows = item
        else:
            name, fold, fitted, rows = item.name, item.fold, item.fitted, item.test_rows
        if fitted is None or not hasattr(fitted, "model") or not hasattr(fitted, "inputs"):
            continue
        rows = np.asarray(rows, int)
        sig = signal or fitted.spec.signal
        sal = gradient_saliency(fitted, data, rows, method=method)
        analyses = None if masks is not None else data.analyses(sig)
        pop = (population or {}).get(name) if population else None
        if pop is None:
            pop = "M" if name.endswith("_male") else "F" if name.endswith("_female") else "all"
        for i, r in enumerate(rows):
            sh = segment_shares(sal[i], masks if analyses is None else analyses[r])
            out.append(dict(model=name, population=pop, fold=int(fold), row=int(r), lvm_g=float(lvm[r]),
                            method=method, **sh.row()))
    return pd.DataFrame(out)


def _missing_sets(sub: pd.DataFrame) -> list[set]:
    if "missing" not in sub.columns:
        return [set() for _ in range(len(sub))]
    return [set(str(m).split(";")) - {"", "nan"} for m in sub["missing"].fillna("")]


def _cell_means(sub: pd.DataFrame) -> dict:
    d = {}
    miss = _missing_sets(sub)
    for s in SEGMENTS:
        for g in LEAD_GROUP_ROWS:
            d[(ROW_LABELS[s], g)] = float(sub[f"{s}_{g}"].mean()) if len(sub) else np.nan
        d[(ROW_LABELS[s], "missing")] = sum(s in m for m in miss)
    for g in LEAD_GROUP_ROWS:
        d[("Total", g)] = float(sum(sub[f"{s}_{g}"] for s in SEGMENTS).mean()) if len(sub) else np.nan
    d[("Total", "missing")] = sum(bool(m) for m in miss)
    return d


def saliency_table(cases: pd.DataFrame, *, per_tertile: int = 5, seed: int = 0) -> pd.DataFrame:
    """Table 3: index (population, sample, row) with sample ``all`` (every case) and ``n5`` (the paper's
    5 per tertile, by ``seed``); columns ``T1_LL`` ... ``T3_PL``, ``n_T1`` ..., ``missing_T1`` ... (ECGs of
    that cell whose segment could not be delimited: its share is counted in no segment, i.e. 0 in the
    mean, never guessed; on the Total row, ECGs with any such segment) and the cut-offs
    ``cut_low_g``/``cut_high_g``."""
    rows, index = [], []
    rng = np.random.default_rng(seed)
    for pop, sub in cases.groupby("population", sort=False):
        y = sub["lvm_g"].to_numpy(float)
        lo, hi = (float(np.quantile(y, 1 / 3)), float(np.quantile(y, 2 / 3))) if len(y) else (np.nan, np.nan)
        tert = np.where(y <= lo, 0, np.where(y <= hi, 1, 2))
        for sample in ("all", f"n{per_tertile}"):
            cells = {}
            for k, t in enumerate(TERTILES):
                part = sub[tert == k]
                if sample != "all" and len(part) > per_tertile:
                    part = part.iloc[np.sort(rng.choice(len(part), per_tertile, replace=False))]
                for key, v in _cell_means(part).items():
                    col = f"missing_{t}" if key[1] == "missing" else f"{t}_{key[1].upper()}"
                    cells.setdefault(key[0], {})[col] = v
                for r in cells:
                    cells[r][f"n_{t}"] = len(part)
            for r in [*ROW_LABELS.values(), "Total"]:
                index.append((pop, sample, r))
                rows.append({**cells[r], "cut_low_g": lo, "cut_high_g": hi})
    t = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["population", "sample", "segment"]))
    order = [f"{t}_{g}" for t in TERTILES for g in ("LL", "PL")] + [f"n_{t}" for t in TERTILES] + \
        [f"missing_{t}" for t in TERTILES] + ["cut_low_g", "cut_high_g"]
    return t[order]


POPULATION_LABELS = {"all": "non-sex-specific model, all cases", "M": "male model, men", "F": "female model, women"}


def _population_label(pop: str) -> str:
    return POPULATION_LABELS.get(pop, f"model population {pop}")


def table_3_csv(table: pd.DataFrame) -> str:
    """The CSV text of ``table_3.csv``: the index as the first three columns, 2 decimals."""
    return table.round(2).to_csv()


def table_3_markdown(table: pd.DataFrame, *, method: str = "gradient", synthetic_note: bool = True) -> str:
    """``table_3.md``: one section per (population, sample) with its cut-offs, counts and the ECGs whose
    segment boundaries were not found."""
    lines = [f"# Table 3: saliency by ECG segment, lead group and LVM tertile ({method} saliency, % of each ECG's total)", ""]
    for (pop, sample), sub in table.groupby(level=[0, 1], sort=False):
        first = sub.iloc[0]
        lines.append(f"## model population {pop} ({_population_label(pop)}), "
                     f"{'all test cases' if sample == 'all' else sample[1:] + ' per tertile (seeded)'}")
        lines.append(f"Tertile cut-offs: T1 <= {first['cut_low_g']:.1f} g < T2 <= {first['cut_high_g']:.1f} g < T3; "
                     f"n = {int(first['n_T1'])} / {int(first['n_T2'])} / {int(first['n_T3'])}")
        lost = {seg: [int(r[f"missing_{t}"]) for t in TERTILES] for (_, _, seg), r in sub.iterrows() if seg != "Total"}
        lost_txt = ", ".join(f"{seg} {'/'.join(map(str, v))}" for seg, v in lost.items() if sum(v))
        lines.append("Segment boundaries not found (ECGs per tertile; that segment counts 0 %, not guessed): "
                     + (lost_txt or "none"))
        lines.append("")
        lines.append("| segment | " + " | ".join(f"{t} LL | {t} PL" for t in TERTILES) + " |")
        lines.append("|---|" + "---|" * 6)
        for (_, _, seg), r in sub.iterrows():
            lines.append(f"| {seg} | " + " | ".join(f"{r[f'{t}_LL']:.1f} | {r[f'{t}_PL']:.1f}" for t in TERTILES) + " |")
        lines.append("")
    if synthetic_note:
        lines.append("Numbers from the synthetic cohort show the pipeline works, not what the model sees in patients.")
    return "\n".join(lines) + "\n"


def table_3_display(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Table 3 for the HTML report: (frame with one row per population x sample x segment and the six
    LL / PL columns, lines with each population's cut-offs, counts and missing boundaries)."""
    frame, notes = [], []
    for (pop, sample, seg), r in table.iterrows():
        frame.append({"Population": _population_label(pop),
                      "Cases": "all test cases" if sample == "all" else f"{sample[1:]} per tertile",
                      "Segment": seg, **{f"{t} {g} (%)": f"{r[f'{t}_{g}']:.1f}" for t in TERTILES for g in ("LL", "PL")},
                      "not found": "/".join(str(int(r[f"missing_{t}"])) for t in TERTILES)})
        if seg == "Total" and sample == "all":
            notes.append(f"{_population_label(pop)}: T1 <= {r['cut_low_g']:.1f} g < T2 <= {r['cut_high_g']:.1f} g < T3, "
                         f"n = {int(r['n_T1'])} / {int(r['n_T2'])} / {int(r['n_T3'])}")
    return pd.DataFrame(frame), notes


def write_table_3(table: pd.DataFrame, out_dir, *, method: str = "gradient") -> tuple[Path, Path]:
    """``table_3.csv`` and ``table_3.md`` (atomic writes)."""
    from elvmass.atomic import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "table_3.csv"
    atomic_write_text(csv, table_3_csv(table))
    md = out / "table_3.md"
    atomic_write_text(md, table_3_markdown(table, method=method))
    return csv, md
