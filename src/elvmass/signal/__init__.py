"""elvmass.signal: from an ECG record to the model's input views, quality flags, fiducials, measured
parameters and the classical voltage criteria.

    filter -> R peaks (one series for all 12 leads) -> synchronized beat / median beat / full / crop
    -> lead groups; quality flags; fiducials (P on/off, QRS on/off, T off) -> QRS duration, PR, QT, axes, criteria

    >>> import numpy as np
    >>> from elvmass.record import ECGRecord
    >>> from elvmass.signal import SignalConfig, extract_view, group_leads
    >>> x = np.zeros((12, 5000), np.float32); x[:, 250::500] = 1.0
    >>> [g.shape for g in group_leads(extract_view(ECGRecord(x, 500.0), SignalConfig()), "electrical")]
    [(6, 225), (6, 225)]
"""

from elvmass.signal.analysis import ECGAnalysis, analyze_ecg
from elvmass.signal.beats import NoBeatError, choose_beat, extract_view, median_beat
from elvmass.signal.cache import preprocess_cohort
from elvmass.signal.config import SignalConfig
from elvmass.signal.criteria import voltage_criteria
from elvmass.signal.fiducials import locate_fiducials, measure_beat
from elvmass.signal.filters import bandpass_filter
from elvmass.signal.leads import LEAD_GROUPS, group_leads, lead_group_names
from elvmass.signal.peaks import combine_leads, detect_r_peaks
from elvmass.signal.quality import assess_quality

__all__ = [
    "ECGAnalysis",
    "LEAD_GROUPS",
    "NoBeatError",
    "SignalConfig",
    "analyze_ecg",
    "assess_quality",
    "bandpass_filter",
    "choose_beat",
    "combine_leads",
    "detect_r_peaks",
    "extract_view",
    "group_leads",
    "lead_group_names",
    "locate_fiducials",
    "measure_beat",
    "median_beat",
    "preprocess_cohort",
    "voltage_criteria",
]
