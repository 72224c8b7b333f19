"""Generate a whole synthetic cohort: patients, CT dates, several ECGs each, written as real files.

    >>> import tempfile
    >>> out = generate_cohort(SynthConfig(n=3, seed=0), tempfile.mkdtemp())
    >>> out.n_patients, out.imaging_csv.name, out.truth_csv.name
    (3, 'imaging.csv', 'truth.csv')

Every patient is drawn from its own random stream (``seed``, patient index), so patient *k* is
the same whatever ``n`` is, and the same config always writes byte-identical files.

Layout written under ``out_dir``::

    ecgs/<patient_id>_<k>.xml      GE MUSE XML (or ecgs/<patient_id>_<k>.hea/.dat for WFDB)
    imaging.csv                    patient_id, imaging_datetime, lvm_g, lvm_source, height_cm, weight_kg
    truth.csv                      one row per ECG: every latent variable of patient and recording
    synth_config.json              the configuration that produced the folder

ECG dates: each patient has a CT date (2015-2021) and 1-4 ECGs; the first lies within 150 days
of the CT (most within a few weeks, as in a CCTA work-up), the others anywhere within +-400
days, so some fall outside the paper's +-183-day window; about 1 % of patients have all their
ECGs outside it (they drop out of the cohort, as in real data).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from elvmass.atomic import atomic_write, atomic_write_text
from elvmass.errors import ElvmassError
from elvmass.io.muse_write import SNOMED_CODES, write_muse_xml, write_wfdb
from elvmass.record import DeviceMeasurements, ECGRecord, Patient
from elvmass.synth.lvmass import LVMASS_MODELS, LVMassModel, sample_lv_mass
from elvmass.synth.phenotype import PhenotypeModel, sample_phenotype
from elvmass.synth.population import POPULATIONS, PopulationProfile, sample_patient
from elvmass.synth.recording import RecordingModel, simulate_recording

IMAGING_COLUMNS = ("patient_id", "imaging_datetime", "lvm_g", "lvm_source", "height_cm", "weight_kg")


@dataclass(frozen=True)
class SynthProfile:
    """A source hospital: its population, imaging modality, ECG phenotype model and recording conditions."""

    name: str
    population: PopulationProfile
    lvmass: LVMassModel
    phenotype: PhenotypeModel
    recording: RecordingModel
    id_prefix: str
    acquisition_device: str


PROFILES: dict[str, SynthProfile] = {
    "internal": SynthProfile(
        name="internal",
        population=POPULATIONS["internal"],
        lvmass=LVMASS_MODELS["internal"],
        phenotype=PhenotypeModel(),
        recording=RecordingModel(mains_hz=60.0),
        id_prefix="SYN",
        acquisition_device="MAC55",
    ),
    "external": SynthProfile(
        name="external",
        population=POPULATIONS["external"],
        lvmass=LVMASS_MODELS["external"],
        phenotype=PhenotypeModel(p_lbbb=0.018, p_rbbb=0.03, p_paced=0.01, p_af_patient=0.05),
        # another cart and department: 50 Hz mains, noisier rooms, a QRS algorithm reading 4 ms longer
        recording=RecordingModel(
            mains_hz=50.0,
            p_powerline=0.15,
            p_tremor=0.10,
            noise_scale=1.15,
            device_qrs_bias_ms=4.0,
            device_qrs_sd_ms=7.0,
            device_axis_sd_deg=9.0,
        ),
        id_prefix="EXT",
        acquisition_device="MAC5500",
    ),
}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: a cohort of ``profile`` ('internal' or 'external') from ``seed`` that keeps
    ``n`` patients after the paper's exclusions.

    ``n`` counts *eligible* patients, as the paper's 1,459 counts the pairs left after exclusions:
    patients generated along the way whose every ECG near the CT date is paced, bundle branch
    block, atrial fibrillation or outside the window are written too (a real export has them, and
    cohort building must exclude them), so ``elvmass cohort build`` yields about ``n`` pairs.
    """

    n: int = 1459
    seed: int = 0
    profile: str = "internal"
    max_ecgs_per_patient: int = 4
    first_ecg_max_days: float = 150.0
    other_ecg_max_days: float = 400.0
    p_all_outside_window: float = 0.01
    window_days: float = 183.0

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or self.n < 1:
            raise ElvmassError(f"n must be a positive number of patients, got {self.n!r}")
        if self.profile not in PROFILES:
            raise ElvmassError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        if self.max_ecgs_per_patient < 1:
            raise ElvmassError("max_ecgs_per_patient must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SynthOutput:
    """What :func:`generate_cohort` wrote."""

    out_dir: Path
    ecg_dir: Path
    imaging_csv: Path
    truth_csv: Path
    ecg_paths: list[Path]
    n_patients: int
    truth: pd.DataFrame = field(repr=False)
    imaging: pd.DataFrame = field(repr=False)


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6g"))


def _ecg_dates(rng: np.random.Generator, ct: dt.datetime, cfg: SynthConfig) -> list[dt.datetime]:
    n_ecg = int(min(cfg.max_ecgs_per_patient, 1 + rng.poisson(0.9)))
    offsets = []
    if rng.random() < cfg.p_all_outside_window:
        for _ in range(n_ecg):
            offsets.append(float(rng.choice([-1, 1]) * rng.uniform(cfg.window_days + 5, cfg.other_ecg_max_days)))
    else:
        first = float(np.clip(rng.normal(-5.0, 35.0), -cfg.first_ecg_max_days, cfg.first_ecg_max_days))
        offsets.append(first)
        for _ in range(n_ecg - 1):
            offsets.append(float(rng.uniform(-cfg.other_ecg_max_days, cfg.other_ecg_max_days)))
    dates = []
    for off in offsets:
        day = ct + dt.timedelta(days=int(round(off)))
        minute = int(rng.integers(8 * 60, 17 * 60))
        dates.append(day.replace(hour=minute // 60, minute=minute % 60, second=int(rng.integers(0, 60))))
    return sorted(set(dates))


def simulate_patient(index: int, cfg: SynthConfig) -> tuple[list[ECGRecord], list[dict], dict, list[tuple[str, ...]]]:
    """Patient ``index`` of the cohort: its ECG records, one truth row per ECG, its imaging row, Dx codes."""
    prof = PROFILES[cfg.profile]
    rng = np.random.default_rng([cfg.seed, index, 7919])
    pid = f"{prof.id_prefix}{index + 1:05d}"
    pat = sample_patient(rng, prof.population)
    mass = sample_lv_mass(rng, pat, prof.lvmass)
    ph = sample_phenotype(rng, pat, mass, prof.phenotype)
    day0 = dt.datetime(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 7 * 365)))
    minute = int(rng.integers(8 * 60, 18 * 60))
    ct = day0.replace(hour=minute // 60, minute=minute % 60)
    imaging = {
        "patient_id": pid,
        "imaging_datetime": ct.isoformat(sep=" ", timespec="minutes"),
        "lvm_g": mass["lvm_measured_g"],
        "lvm_source": mass["lvm_source"],
        "height_cm": pat["height_cm"],
        "weight_kg": pat["weight_kg"],
    }
    records, truths, dxs = [], [], []
    for k, when in enumerate(_ecg_dates(rng, ct, cfg)):
        sim = simulate_recording(rng, ph, prof.recording)
        age = pat["age_years"] + (when - ct).days / 365.25
        rec = ECGRecord(
            sim.signal_mv,
            sim.fs_hz,
            patient=Patient(age_years=math.floor(age), sex=pat["sex"], height_cm=pat["height_cm"], weight_kg=pat["weight_kg"], patient_id=pid),
            measurements=sim.measurements,
            acquired_at=when,
            statements=sim.statements,
        )
        records.append(rec)
        dx = []
        if ph.conduction == "LBBB":
            dx.append(SNOMED_CODES["LBBB"])
        elif ph.conduction == "RBBB":
            dx.append(SNOMED_CODES["RBBB"])
        elif ph.conduction == "paced":
            dx.append(SNOMED_CODES["PACED"])
        if sim.truth["rhythm"] == "AF":
            dx.append(SNOMED_CODES["AF"])
        if not dx:
            dx.append(SNOMED_CODES["SR"])
        dxs.append(tuple(dx))
        days = (when - ct).total_seconds() / 86400.0
        m: DeviceMeasurements = sim.measurements
        truths.append(
            {
                "patient_id": pid,
                "ecg_index": k + 1,
                "ecg_datetime": when.isoformat(sep=" "),
                "imaging_datetime": imaging["imaging_datetime"],
                "days_from_imaging": round(days, 3),
                "within_window": abs(days) <= cfg.window_days,
                # what the paper's exclusions keep: sinus rhythm, narrow QRS, not paced, within the window
                "eligible_ecg": bool(
                    abs(days) <= cfg.window_days
                    and ph.conduction == "normal"
                    and sim.truth["rhythm"] == "sinus"
                    and (sim.measurements.qrs_ms is None or sim.measurements.qrs_ms < 120)
                ),
                **pat,
                **mass,
                **{f"ph_{key}": val for key, val in ph.as_dict().items() if key != "sex"},
                **sim.truth,
                **{f"device_{key}": val for key, val in m.as_dict().items()},
                "statements": " | ".join(sim.statements),
            }
        )
    return records, truths, imaging, dxs


#: Names of the ECG files the generator writes (any profile, either format).
_GENERATED_ECG_NAME = re.compile(r"^(?:%s)\d{5}_\d+\.(?:xml|hea|dat)$" % "|".join(sorted({p.id_prefix for p in PROFILES.values()})))


def _remove_stale_ecgs(ecg_dir: Path, written: list[Path]) -> None:
    """Delete generator-named ECG files a previous run left in ``ecg_dir`` that this run did not write:
    they reuse this run's patient IDs, so cohort building would pair them with the new imaging.csv."""
    keep = {p.name for p in written} | {p.with_suffix(".dat").name for p in written if p.suffix == ".hea"}
    for p in ecg_dir.iterdir():
        if p.is_file() and _GENERATED_ECG_NAME.match(p.name) and p.name not in keep:
            p.unlink()


def _simulate_and_write(index: int, config: SynthConfig, ecg_dir: Path, fmt: str) -> tuple[list[dict], dict, list[Path]]:
    """Patient ``index``: simulate it, write its ECG files; its truth rows, imaging row and file paths."""
    prof = PROFILES[config.profile]
    records, truths, imaging, dxs = simulate_patient(index, config)
    paths = []
    for rec, tr, dx in zip(records, truths, dxs):
        stem = f"{tr['patient_id']}_{tr['ecg_index']}"
        if fmt == "muse":
            path = write_muse_xml(rec, ecg_dir / f"{stem}.xml", acquisition_device=prof.acquisition_device,
                                  ac_filter_hz=int(prof.recording.mains_hz))
        else:
            path = write_wfdb(rec, ecg_dir / stem, dx_codes=dx)
        paths.append(path)
    return truths, imaging, paths


def _simulate_chunk(start: int, stop: int, config: SynthConfig, ecg_dir: Path, fmt: str) -> list:
    return [_simulate_and_write(i, config, ecg_dir, fmt) for i in range(start, stop)]


#: patients per task of the process pool (about 0.8 s of work each)
_CHUNK_PATIENTS = 32


def _patients_in_order(config: SynthConfig, ecg_dir: Path, fmt: str, workers: int):
    """Yield patients 0, 1, 2, ... (``_simulate_and_write``'s result), computed by ``workers``
    processes a few chunks ahead; the caller stops when it has enough. Files of patients computed
    ahead but not taken are removed afterwards by ``_remove_stale_ecgs``."""
    if workers <= 1:
        index = 0
        while True:
            yield _simulate_and_write(index, config, ecg_dir, fmt)
            index += 1
    from collections import deque

    import scipy.signal  # noqa: F401 - 3 s to import: once here, not once in every forked worker

    from elvmass.process_pool import fork_pool

    with fork_pool(workers) as pool:
        ahead: deque = deque()
        next_start = 0
        try:
            while True:
                while len(ahead) < 2 * workers:
                    ahead.append(pool.submit(_simulate_chunk, next_start, next_start + _CHUNK_PATIENTS, config, ecg_dir, fmt))
                    next_start += _CHUNK_PATIENTS
                yield from ahead.popleft().result()
        finally:  # the caller has enough: drop what has not started, wait for what has
            for fut in ahead:
                fut.cancel()


def generate_cohort(
    config: SynthConfig,
    out_dir,
    *,
    fmt: str = "muse",
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> SynthOutput:
    """Simulate patients until ``config.n`` are eligible, and write their ECGs (``fmt`` 'muse' or 'wfdb'), imaging.csv and truth.csv.

    ``progress(i, n)`` is called after each patient. Existing files of the same names are
    replaced, ECG files of an earlier run that this one does not write are removed (they would
    reuse its patient IDs); other files in ``out_dir`` are left alone. ``workers`` > 1 simulates
    patients in that many processes; each patient has its own random stream, so the files are
    byte-identical for any number of workers.
    """
    if fmt not in ("muse", "wfdb"):
        raise ElvmassError(f"unknown format {fmt!r}; use 'muse' or 'wfdb'")
    if workers < 1:
        raise ElvmassError(f"workers must be at least 1, got {workers}")
    out = Path(out_dir)
    ecg_dir = out / "ecgs"
    ecg_dir.mkdir(parents=True, exist_ok=True)
    truth_rows, imaging_rows, paths = [], [], []
    n_eligible = n_patients = 0
    # within one chunk a pool costs more than it saves (as the signal cache's _MIN_PARALLEL)
    patients = _patients_in_order(config, ecg_dir, fmt, workers if config.n > _CHUNK_PATIENTS else 1)
    try:
        while n_eligible < config.n:
            truths, imaging, written = next(patients)
            n_patients += 1
            n_eligible += any(tr["eligible_ecg"] for tr in truths)
            imaging_rows.append(imaging)
            for tr, path in zip(truths, written):
                tr["ecg_file"] = str(path.relative_to(out))
                paths.append(path)
                truth_rows.append(tr)
            if progress is not None:
                progress(n_eligible, config.n)
    finally:
        patients.close()
    _remove_stale_ecgs(ecg_dir, paths)
    imaging_df = pd.DataFrame(imaging_rows, columns=list(IMAGING_COLUMNS))
    truth_df = pd.DataFrame(truth_rows)
    front = ["patient_id", "ecg_index", "ecg_file"]
    truth_df = truth_df[front + [c for c in truth_df.columns if c not in front]]
    imaging_csv, truth_csv = out / "imaging.csv", out / "truth.csv"
    _atomic_csv(imaging_df, imaging_csv)
    _atomic_csv(truth_df, truth_csv)
    cfg_path = out / "synth_config.json"
    atomic_write_text(cfg_path, json.dumps({"config": config.to_dict(), "format": fmt}, indent=2, sort_keys=True) + "\n")
    return SynthOutput(out, ecg_dir, imaging_csv, truth_csv, paths, n_patients, truth_df, imaging_df)


__all__ = ["IMAGING_COLUMNS", "PROFILES", "SynthConfig", "SynthOutput", "SynthProfile", "generate_cohort", "simulate_patient"]
