"""elvmass: imaging-derived left ventricular mass and LVH from a 12-lead ECG plus demographics.

The main entry points, importable from ``elvmass`` (heavy ones are imported on first use, so
``import elvmass`` stays fast):

======================  ==========================================================================
name                    what it does
======================  ==========================================================================
``read_ecg``            read one ECG file of any supported format -> :class:`ECGRecord`
``analyze_ecg``         filter, R peaks, beat, fiducials, measured QRS/axes, voltage criteria
``load_bundle``         load a model bundle written by ``elvmass train`` (alias ``load_model``)
``predict_ecg``         predict LVM, LVMI and LVH for one ECG (a path or a record) with a bundle
                        or a bundle folder; ``predict_files`` for many, errors listed not raised
                        (``elvmass.predict`` is the module holding them, hence not a function)
``check_demographics``  the plausibility check every demographic input goes through
``build_cohort``        pair an ECG export folder with an imaging CSV -> manifest + flow table
``load_manifest``       read, validate and derive a manifest
``run_study``           the cross-validated study protocol of the paper on a manifest
======================  ==========================================================================

    >>> import elvmass
    >>> rec = elvmass.read_ecg(elvmass.example_ecg_path())
    >>> rec.fs_hz, rec.signal_mv.shape, rec.patient.sex
    (500.0, (12, 5000), 'M')
    >>> elvmass.analyze_ecg(rec).usable
    True
"""

from elvmass.errors import ECGReadError, ElvmassError, InputValueError, UnusableECGError
from elvmass.record import LEADS, DeviceMeasurements, ECGRecord, Patient

__version__ = "0.1.0"


def read_ecg(path, **kwargs) -> ECGRecord:
    """Read one ECG file of any supported format (see :func:`elvmass.io.read_ecg`)."""
    from elvmass.io import read_ecg as _read_ecg

    return _read_ecg(path, **kwargs)


def example_ecg_path():
    """The bundled example ECG (PTB-XL record 136, see :func:`elvmass.io.example_ecg_path`)."""
    from elvmass.io import example_ecg_path as _example

    return _example()


#: name -> (module, attribute) of the entry points imported on first use (module-level __getattr__).
#: ``run_study`` moves with the study code; only this table names where it lives.
_LAZY: dict[str, tuple[str, str]] = {
    "analyze_ecg": ("elvmass.signal.analysis", "analyze_ecg"),
    "load_bundle": ("elvmass.bundle", "load_bundle"),
    "load_model": ("elvmass.bundle", "load_bundle"),
    "predict_ecg": ("elvmass.predict", "predict_ecg"),
    "predict_record": ("elvmass.predict", "predict_record"),
    "predict_files": ("elvmass.predict", "predict_files"),
    "Prediction": ("elvmass.predict", "Prediction"),
    "check_demographics": ("elvmass.cohort", "check_demographics"),
    "build_cohort": ("elvmass.cohort", "build_cohort"),
    "load_manifest": ("elvmass.cohort", "load_manifest"),
    "run_study": ("elvmass.experiments.study", "run_study"),
}


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'elvmass' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["LEADS", "DeviceMeasurements", "ECGReadError", "ECGRecord", "ElvmassError", "InputValueError", "Patient",
           "UnusableECGError", "example_ecg_path", "read_ecg", "__version__", *_LAZY]
