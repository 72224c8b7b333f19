"""The paper's experiment tables as builders: which models each table needs, and how its rows read.

Each table is an :class:`ExperimentTable` registered under a short key (``--tables 1a,1b``):

=======  =====================================================================================
key      rows (the reference eLVMass-Net row shows "—" in its p-value columns)
=======  =====================================================================================
``1a``   input view: full 10-s ECG, random crop (training-time augmentation, evaluated on the
         whole record), single beat (reference)
``1b``   lead grouping: none, anatomical, electrical (reference)
``1c``   inputs: ECG only, ECG + parameters, ECG + demographics, all (reference)
``s4``   LV mass per sex: the non-sex-specific model (reference) and the male / female model on
         that sex's cases (same folds)
``s5``   LVH classification per sex from predicted LVMI, the same models: c-statistic with
         DeLong's p against the reference, accuracy, sensitivity, specificity, PPV, F1
=======  =====================================================================================

Columns of 1a-1c: MAE (g) and MAPE (%) as mean ± SD across the five folds and the fold-level
paired t-test p-value against the reference (:func:`elvmass.evaluate.stats.paired_fold_test`).

More tables plug in with :func:`register_table`: Table 2 (the comparators) is a
:class:`ModelsTable` over registered recipes, e.g.
``register_table(SaliencyTable("3", "Table 3. Saliency by ECG segment, lead group and LVM tertile"))
register_table(ModelsTable("2", "Comparators", (("LVM-AI", "lvm_ai_original"), ...)))``; Table 3
(saliency) a subclass whose :meth:`ExperimentTable.build` reads the fitted models' saliency. Every
table asks for models as :class:`~elvmass.experiments.protocol.ModelEntry` rows; rows with the same
name in several tables are one model, trained once per fold.

    >>> from elvmass.experiments.study import make_preset
    >>> [r.label for r in TABLES["1b"].rows(make_preset("quick"))]
    ['None', 'Anatomical', 'Electrical (eLVMass-Net)']
    >>> [r.entry.name for r in TABLES["s4"].rows(make_preset("quick"))]
    ['elvmassnet', 'elvmassnet_male', 'elvmassnet_female']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from elvmass.evaluate.metrics import lvh_score
from elvmass.evaluate.stats import delong_test, paired_fold_test
from elvmass.experiments.protocol import ModelEntry

REFERENCE = "elvmassnet"
SEX_LABELS = {"M": "male", "F": "female"}
DASH = "—"


@dataclass(frozen=True)
class Row:
    """One row of a table: its label and the model (entry) it shows."""

    label: str
    entry: ModelEntry

    @property
    def model(self) -> str:
        return self.entry.name


@dataclass
class TableContext:
    """What a table's rows are built from: the protocol result and every model's summary."""

    result: object  # ProtocolResult
    models: dict  # summarise(): name -> metrics (overall and by_sex)
    n_folds: int
    reference: str = REFERENCE
    data: object = None  # the CohortData the models ran on (tables that read ECGs: 3, S2)
    out_dir: object = None  # where a table may write its figures (Figure 4)
    preset: object = None  # the StudyPreset (seed, signal)


@dataclass
class BuiltTable:
    """A finished table: the frame laid out as in the paper and its numbers for experiments.json."""

    key: str
    title: str
    frame: pd.DataFrame
    rows: list[dict] = field(default_factory=list)
    markdown: str | None = None  # its own Markdown layout (else the frame as one Markdown table)
    images: list[tuple[str, object]] = field(default_factory=list)  # (caption, PNG path) for the report
    notes: list[str] = field(default_factory=list)  # lines shown under the table in the report
    display: pd.DataFrame | None = None  # what the report shows, when not the frame itself
    info: dict = field(default_factory=dict)  # more numbers for experiments.json (counts, times)


class ExperimentTable:
    """A table of the paper: ``rows(preset)`` says which models it needs, ``build(ctx)`` lays it out."""

    key: str = ""
    title: str = ""

    def rows(self, preset) -> list[Row]:
        raise NotImplementedError

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        raise NotImplementedError

    def keep_models(self, rows: list[Row]) -> tuple[str, ...]:
        """Models whose fitted fold models the table reads after the run (their weights are kept)."""
        return ()


TABLES: dict[str, ExperimentTable] = {}
#: the tables `elvmass experiments` runs when --tables is not given
DEFAULT_TABLES: tuple[str, ...] = ("1a", "1b", "1c", "s4", "s5")


def register_table(table: ExperimentTable) -> ExperimentTable:
    """Make a table known by its key (last registration wins)."""
    if not table.key:
        raise ValueError("a table needs a key")
    TABLES[table.key] = table
    return table


def _p_text(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _pm(block: dict, digits: int = 1) -> str:
    mean, sd = block.get("mean"), block.get("sd")
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    sd_txt = "–" if sd is None or (isinstance(sd, float) and math.isnan(sd)) else f"{sd:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd_txt}"


def _num(x, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fold_p(a: dict, b: dict) -> float | None:
    p = paired_fold_test(a["folds"], b["folds"])["p_value"]
    return None if p is None or (isinstance(p, float) and math.isnan(p)) else float(p)


def _metric_row(ctx: TableContext, model: str, block: dict, ref_block: dict) -> dict:
    is_ref = model == ctx.reference
    return {"model": model, "n": block.get("n"), "mae_g": block["mae_g"], "mape_pct": block["mape_pct"],
            "p_mae": None if is_ref else _fold_p(block["mae_g"], ref_block["mae_g"]),
            "p_mape": None if is_ref else _fold_p(block["mape_pct"], ref_block["mape_pct"]),
            "reference": is_ref}


class AblationTable(ExperimentTable):
    """Rows are variants of the reference eLVMass-Net (:meth:`ElvmassNetSpec.variant`); the
    reference itself is the row whose option is ``None``."""

    def __init__(self, key: str, title: str, column: str, option: str, options: Sequence[tuple[str, str | None]]):
        self.key, self.title, self.column, self.option, self.options = key, title, column, option, tuple(options)

    def rows(self, preset) -> list[Row]:
        ref = preset.net_spec(REFERENCE)
        out = []
        for label, value in self.options:
            if value is None:
                out.append(Row(label, ModelEntry(ref)))
            else:
                name = f"{self.option}_{value}".replace("+", "_")
                out.append(Row(label, ModelEntry(ref.variant(name=name, **{self.option: value}))))
        return out

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        ref = ctx.models[ctx.reference]
        nums, frame = [], []
        for r in rows:
            d = _metric_row(ctx, r.model, ctx.models[r.model], ref) | {"label": r.label}
            nums.append(d)
            frame.append({self.column: r.label, "MAE (g)": _pm(d["mae_g"]), "MAPE (%)": _pm(d["mape_pct"]),
                          "p (MAE)": DASH if d["reference"] else _p_text(d["p_mae"]),
                          "p (MAPE)": DASH if d["reference"] else _p_text(d["p_mape"]), "model": r.model})
        return BuiltTable(self.key, self.title, pd.DataFrame(frame), nums)


class ModelsTable(ExperimentTable):
    """Registered models (recipes, :mod:`elvmass.models.registry`) against the reference: Table 2's
    comparators, or whatever ``elvmass experiments --models`` names."""

    def __init__(self, key: str, title: str, recipes: Sequence[tuple[str, str]]):
        self.key, self.title, self.recipes = key, title, tuple(recipes)

    def rows(self, preset) -> list[Row]:
        from elvmass.models.registry import build_models

        out = [Row("eLVMass-Net", ModelEntry(preset.net_spec(REFERENCE)))]
        for label, recipe in self.recipes:
            specs = [s for s in build_models([recipe], preset) if s.name != REFERENCE]
            for spec in specs:  # a group (e.g. a family) gives several rows, each under its own name
                out.append(Row(label if len(specs) == 1 else f"{label} ({spec.name})", ModelEntry(spec)))
        return out

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        return AblationTable.build(self, ctx, rows)  # same columns: MAE, MAPE, p against the reference

    column = "Model"


class SexTable(ExperimentTable):
    """Sex-specific models against the non-sex-specific one, per sex (S4: LV mass, S5: LVH)."""

    def __init__(self, key: str, title: str, kind: str):
        self.key, self.title, self.kind = key, title, kind

    def rows(self, preset) -> list[Row]:
        ref = preset.net_spec(REFERENCE)
        return [Row("Non-sex-specific", ModelEntry(ref))] + [
            Row(f"Sex-specific ({SEX_LABELS[s]} model)", ModelEntry(ref, sex=s, name_override=f"{REFERENCE}_{SEX_LABELS[s]}"))
            for s in ("M", "F")]

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        ref_row = rows[0]
        nums, frame = [], []
        for r in rows[1:]:
            sex = r.entry.sex
            pop = SEX_LABELS[sex]
            for row in (ref_row, r):
                block = ctx.models[row.model]["by_sex"][sex]
                refb = ctx.models[ref_row.model]["by_sex"][sex]
                is_ref = row is ref_row
                if self.kind == "lvm":
                    d = _metric_row(ctx, row.model, block, refb) | {"label": row.label, "population": pop}
                    frame.append({"Population": pop, "Model": row.label, "n": block.get("n"),
                                  "MAE (g)": _pm(d["mae_g"]), "MAPE (%)": _pm(d["mape_pct"]),
                                  "p (MAE)": DASH if is_ref else _p_text(d["p_mae"]),
                                  "p (MAPE)": DASH if is_ref else _p_text(d["p_mape"]), "model": row.model})
                else:
                    lvh = dict(block["lvh"])
                    p = None if is_ref else _delong_p(ctx, row.model, ref_row.model, sex)
                    d = {"model": row.model, "label": row.label, "population": pop, "n": block.get("n"),
                         "lvh": lvh, "p_c_statistic": p, "reference": is_ref}
                    frame.append({"Population": pop, "Model": row.label, "c-statistic": _num(lvh.get("c_statistic")),
                                  "p (DeLong)": DASH if is_ref else _p_text(p), "Accuracy": _num(lvh.get("accuracy")),
                                  "Sensitivity": _num(lvh.get("sensitivity")), "Specificity": _num(lvh.get("specificity")),
                                  "PPV": _num(lvh.get("ppv")), "F1": _num(lvh.get("f1")), "model": row.model})
                nums.append(d)
        return BuiltTable(self.key, self.title, pd.DataFrame(frame), nums)


class SaliencyTable(ExperimentTable):
    """Table 3 (and Figure 4): the saliency of every fold model of the non-sex-specific, male and female
    eLVMass-Net on its own out-of-fold test cases (:func:`elvmass.explain.fold_saliency`), by LVM
    tertile x segment x lead group, for all test cases and the paper's 5 per tertile (seeded). The
    fold models' weights are kept in ``tasks/`` (``<key>.safetensors``) so a rerun reuses them."""

    def __init__(self, key: str, title: str, method: str = "gradient"):
        self.key, self.title, self.method = key, title, method

    def rows(self, preset) -> list[Row]:
        return SexTable.rows(self, preset)

    def keep_models(self, rows: list[Row]) -> tuple[str, ...]:
        return tuple(r.model for r in rows)

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        import time
        from pathlib import Path

        from elvmass.atomic import atomic_write_text
        from elvmass.explain import (figure_4, fold_saliency, saliency_table, table_3_display, table_3_markdown)

        t0 = time.perf_counter()
        fold_models = [fm for r in rows for fm in ctx.result.fitted(r.model)]
        cases = fold_saliency(ctx.data, fold_models, method=self.method)
        seed = getattr(ctx.preset, "seed", 0)
        table = saliency_table(cases, seed=seed)
        images, notes = [], []
        if ctx.out_dir is not None:
            out = Path(ctx.out_dir)
            atomic_write_text(out / "saliency_cases.csv", cases.round(3).to_csv(index=False))
            png = figure_4(ctx.data, fold_models, cases, out / "figure_4.png", method=self.method) if len(cases) else None
            if png is not None:
                images.append(("Figure 4. Saliency in men (top) and women (bottom): the cases with the lowest, "
                               "median and highest LVM, each explained by the fold model that had it as a test case",
                               png))
        display, notes = table_3_display(table)
        notes = [f"{self.method} saliency (|d LVM / d input|) of each fold model on its own test cases; each cell the "
                 "mean % of an ECG's total saliency; LL limb leads, PL precordial leads; 'not found': ECGs per "
                 "tertile whose segment boundaries could not be found (that share is counted in no segment). "
                 f"The 5-per-tertile rows are drawn with seed {seed}.", *notes]
        flat = table.round(2).reset_index()
        nums = [dict(r) | {"method": self.method} for r in flat.to_dict(orient="records")]
        return BuiltTable(self.key, self.title, flat, nums, markdown=table_3_markdown(table, method=self.method),
                          images=images, notes=notes, display=display,
                          info={"n_cases": int(len(cases)), "saliency_s": round(time.perf_counter() - t0, 1),
                                "method": self.method})


def _delong_p(ctx: TableContext, a: str, b: str, sex: str) -> float | None:
    df = ctx.result.manifest
    s = df["sex"].to_numpy(object)
    bsa = pd.to_numeric(df["bsa_m2"], errors="coerce").to_numpy(float)
    lvh = df["lvh"].astype("float").to_numpy()
    pa, pb = ctx.result.predictions[a], ctx.result.predictions[b]
    ok = (s == sex) & np.isfinite(pa) & np.isfinite(pb) & np.isfinite(lvh) & np.isfinite(bsa)
    if ok.sum() < 3 or len(np.unique(lvh[ok])) < 2:
        return None
    d = delong_test(lvh[ok], lvh_score((pa / bsa)[ok], s[ok]), lvh_score((pb / bsa)[ok], s[ok]))
    p = d["p_value"]
    return None if p is None or (isinstance(p, float) and math.isnan(p)) else float(p)


register_table(AblationTable("1a", "Table 1(a). Input view", "Input view", "view",
                             (("Full 10-s ECG", "full"), ("Random crop", "random_crop"),
                              ("Single beat (eLVMass-Net)", None))))
register_table(AblationTable("1b", "Table 1(b). Lead grouping", "Lead grouping", "grouping",
                             (("None", "none"), ("Anatomical", "anatomical"), ("Electrical (eLVMass-Net)", None))))
register_table(AblationTable("1c", "Table 1(c). Input combination", "Inputs", "inputs",
                             (("ECG", "ecg"), ("ECG + parameters", "ecg+params"),
                              ("ECG + demographics", "ecg+demographics"), ("All (eLVMass-Net)", None))))
register_table(SexTable("s4", "Table S4. LV mass estimation: sex-specific vs non-sex-specific models", "lvm"))
register_table(SexTable("s5", "Table S5. LVH classification: sex-specific vs non-sex-specific models", "lvh"))
register_table(SaliencyTable("3", "Table 3. Saliency by ECG segment, lead group and LVM tertile"))
register_table(ModelsTable("2", "Table 2. Comparators retrained in the same protocol (original setting and all features)",
                           (("LVM-AI, original setting (ECG + age, sex, BMI)", "lvm_ai_original"),
                            ("LVM-AI, all features", "lvm_ai_all"),
                            ("ECG-AI, original setting (ECG profile)", "ecg_ai_original"),
                            ("ECG-AI, all features", "ecg_ai_all"),
                            ("Voltage criteria + demographics (linear)", "criteria_linear"))))
