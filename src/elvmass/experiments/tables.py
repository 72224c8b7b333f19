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
``2``    the comparators retrained in the same folds: LVM-AI and ECG-AI each in its original
         setting and with all features, the voltage-criteria regression; p against eLVMass-Net
         and, on an all-features row, between the comparator's two settings
``s2``   LVH classification of eLVMass-Net (and the Table 2 comparators when they run too) and of
         every voltage criterion at its published cut-off, c-statistics with DeLong's p
``3``    saliency by LVM tertile x ECG segment x lead group of the non-sex-specific, male and
         female fold models on their own test cases (all cases and 5 per tertile by seed), with
         Figure 4 (:class:`SaliencyTable`; the fold models' weights are kept)
=======  =====================================================================================

Columns of 1a-1c: MAE (g) and MAPE (%) as mean ± SD across the five folds and the fold-level
paired t-test p-value against the reference (:func:`elvmass.evaluate.stats.paired_fold_test`).

More tables plug in with :func:`register_table`: a :class:`ModelsTable` over registered recipes
(what ``elvmass experiments --models`` builds), or any :class:`ExperimentTable` subclass (Table 3's
:meth:`ExperimentTable.build` reads the fitted fold models it asks for with
:meth:`ExperimentTable.keep_models`). Every table asks for models as
:class:`~elvmass.experiments.protocol.ModelEntry` rows; rows with the same name in several tables are
one model, trained once per fold.

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

from elvmass.evaluate.metrics import DEFAULT_CUTOFFS_G_M2, lvh_score
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


class ComparatorTable(ExperimentTable):
    """Table 2: each comparator retrained in the same folds, in its original setting and with all
    features, against eLVMass-Net. Columns: MAE and MAPE (mean ± SD across folds), the fold-level paired
    t-test of each row against eLVMass-Net (MAE, MAPE), and on a comparator's all-features row the same
    test between its two settings (does adding eLVMass-Net's inputs help it?).

    ``comparators``: (comparator label, ((setting label, recipe), ...)); a comparator with one setting
    (the criteria regression) has no settings p."""

    def __init__(self, key: str, title: str, comparators, reference_setting: str = "ECG + demographics + ECG parameters"):
        self.key, self.title = key, title
        self.comparators = tuple((label, tuple(settings)) for label, settings in comparators)
        self.reference_setting = reference_setting

    def rows(self, preset) -> list[Row]:
        from elvmass.models.registry import build_models

        out = [Row("eLVMass-Net", ModelEntry(preset.net_spec(REFERENCE)))]
        for label, settings in self.comparators:
            for setting, recipe in settings:
                (spec,) = build_models([recipe], preset)
                out.append(Row(f"{label}|{setting}", ModelEntry(spec)))
        return out

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        ref = ctx.models[ctx.reference]
        nums, frame = [], []
        first_of: dict[str, dict] = {}  # comparator -> its first (original-setting) row
        for r in rows:
            is_ref = r.model == ctx.reference
            comparator, setting = ("eLVMass-Net", self.reference_setting) if is_ref else r.label.split("|", 1)
            d = _metric_row(ctx, r.model, ctx.models[r.model], ref) | {"comparator": comparator, "setting": setting,
                                                                       "p_settings_mae": None, "p_settings_mape": None}
            first = first_of.setdefault(comparator, d)
            if first is not d:
                d["p_settings_mae"] = _fold_p(d["mae_g"], first["mae_g"])
                d["p_settings_mape"] = _fold_p(d["mape_pct"], first["mape_pct"])
            nums.append(d)
            frame.append({"Model": comparator, "Setting": setting, "MAE (g)": _pm(d["mae_g"]),
                          "MAPE (%)": _pm(d["mape_pct"]),
                          "p vs eLVMass-Net (MAE)": DASH if is_ref else _p_text(d["p_mae"]),
                          "p vs eLVMass-Net (MAPE)": DASH if is_ref else _p_text(d["p_mape"]),
                          "p original vs all features (MAE)": DASH if first is d else _p_text(d["p_settings_mae"]),
                          "model": r.model})
        notes = ["p: two-sided paired t-test on the five per-fold values (every model tested on the same folds); "
                 "'p original vs all features' compares a comparator's two settings."]
        return BuiltTable(self.key, self.title, pd.DataFrame(frame), nums, notes=notes)


class LvhTable(ExperimentTable):
    """Table S2: LVH classification of eLVMass-Net (its predicted LVMI against the sex-specific cut-offs;
    with Table 2 in the same run, every comparator too) and of each voltage criterion at its own published
    cut-off (:func:`elvmass.models.criteria.criteria_lvh_table` on the same cases: no training, so every
    usable case), c-statistics of the continuous values with DeLong's p against eLVMass-Net."""

    def __init__(self, key: str, title: str, comparators_from: str = "2"):
        self.key, self.title, self.comparators_from = key, title, comparators_from

    def rows(self, preset) -> list[Row]:
        return [Row("eLVMass-Net", ModelEntry(preset.net_spec(REFERENCE)))]

    def build(self, ctx: TableContext, rows: list[Row]) -> BuiltTable:
        from elvmass.models.criteria import CRITERIA, CriterionClassifier, criteria_lvh_table, criterion_cutoff_text
        from elvmass.signal.config import SignalConfig

        df = ctx.result.manifest
        sex = df["sex"].to_numpy(object)
        bsa = pd.to_numeric(df["bsa_m2"], errors="coerce").to_numpy(float)
        lvh = df["lvh"].astype("float").to_numpy()
        ref_score = lvh_score(ctx.result.predictions[ctx.reference] / bsa, sex)
        cut = DEFAULT_CUTOFFS_G_M2
        models = [(r.label, r.model) for r in rows]
        other = TABLES.get(self.comparators_from)
        if isinstance(other, ComparatorTable) and ctx.preset is not None:
            models += [(r.label.replace("|", ", "), r.model) for r in other.rows(ctx.preset)
                       if r.model != ctx.reference and r.model in ctx.models]
        nums, frame = [], []
        for label, name in models:
            m = dict(ctx.models[name]["lvh"])
            is_ref = name == ctx.reference
            p = None if is_ref else _delong_scores(lvh, lvh_score(ctx.result.predictions[name] / bsa, sex), ref_score)
            nums.append({"kind": "model", "label": label, "model": name, "lvh": m, "p_c_statistic": p, "reference": is_ref})
            frame.append(_lvh_row(label, f"predicted LVMI > {cut['M']:g} (men) / {cut['F']:g} (women) g/m2", m,
                                  DASH if is_ref else _p_text(p), name))
        signal = ctx.preset.signal if ctx.preset is not None else SignalConfig()
        analyses = ctx.data.analyses(signal)
        for row in criteria_lvh_table(ctx.data, signal=signal):
            name = row["criterion"]
            values = CriterionClassifier(name).values([a.criteria for a in analyses])
            p = _delong_scores(lvh, values, ref_score)
            nums.append({"kind": "criterion", "label": name, "model": name, "lvh": row,
                         "cutoff": criterion_cutoff_text(name), "unit": CRITERIA[name][1], "p_c_statistic": p,
                         "reference": False})
            frame.append(_lvh_row(CRITERION_LABELS.get(name, name), criterion_cutoff_text(name), row, _p_text(p), name))
        notes = ["LVH: the manifest's label (imaging LV mass index above the cohort's sex-specific cut-off). Models: out-of-fold "
                 "predictions; criteria: each ECG's own value at the published cut-off (cases without a call, "
                 "e.g. no value or sex unknown, are left out of n). c-statistic of the continuous value "
                 "(predicted LVMI, criterion value); DeLong's p against eLVMass-Net on the cases both have."]
        return BuiltTable(self.key, self.title, pd.DataFrame(frame), nums, notes=notes)


CRITERION_LABELS = {"sokolow_lyon": "Sokolow-Lyon", "cornell_voltage": "Cornell voltage",
                    "cornell_product": "Cornell product", "peguero_lo_presti": "Peguero-Lo Presti",
                    "romhilt_estes": "Romhilt-Estes"}


def _lvh_row(label, cutoff, m, p_text, name) -> dict:
    return {"Model / criterion": label, "Positive if": cutoff, "n": m.get("n"),
            "c-statistic": _num(m.get("c_statistic")), "p (DeLong)": p_text, "Accuracy": _num(m.get("accuracy")),
            "Sensitivity": _num(m.get("sensitivity")), "Specificity": _num(m.get("specificity")),
            "PPV": _num(m.get("ppv")), "F1": _num(m.get("f1")), "model": name}


def _delong_scores(lvh: np.ndarray, a: np.ndarray, b: np.ndarray) -> float | None:
    ok = np.isfinite(lvh) & np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or len(np.unique(lvh[ok])) < 2:
        return None
    p = delong_test(lvh[ok], a[ok], b[ok])["p_value"]
    return None if p is None or (isinstance(p, float) and math.isnan(p)) else float(p)


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
register_table(ComparatorTable("2", "Table 2. Comparators retrained in the same protocol (original setting and all features)",
                               (("LVM-AI", (("Original setting (ECG + age, sex, BMI)", "lvm_ai_original"),
                                            ("All features", "lvm_ai_all"))),
                                ("ECG-AI", (("Original setting (ECG profile)", "ecg_ai_original"),
                                            ("All features", "ecg_ai_all"))),
                                ("Voltage criteria (linear)", (("Sokolow-Lyon, Cornell voltage + demographics",
                                                                "criteria_linear"),)))))
register_table(LvhTable("s2", "Table S2. LVH classification: eLVMass-Net, the comparators and the voltage criteria"))
