"""elvmass: imaging-derived left ventricular mass and LVH from a 12-lead ECG plus demographics.

    >>> from elvmass import read_ecg  # doctest: +SKIP
    >>> rec = read_ecg("muse_ecg1.xml")  # doctest: +SKIP
"""

from elvmass.errors import ECGReadError, ElvmassError
from elvmass.record import LEADS, DeviceMeasurements, ECGRecord, Patient

__version__ = "0.1.0"


def read_ecg(path, **kwargs) -> ECGRecord:
    """Read one ECG file of any supported format (see :func:`elvmass.io.read_ecg`)."""
    from elvmass.io import read_ecg as _read_ecg

    return _read_ecg(path, **kwargs)


__all__ = ["LEADS", "DeviceMeasurements", "ECGReadError", "ECGRecord", "ElvmassError", "Patient", "read_ecg", "__version__"]
