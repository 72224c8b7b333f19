"""The report's numbers agree with the metrics they illustrate."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from elvmass.report.figures import _roc


def test_roc_curve_area_equals_the_c_statistic_with_ties():
    """Tied predicted LVMI (rounded values, common in practice) must give one ROC point per threshold,
    so the curve drawn has the area printed in its legend; a point per case draws a staircase through
    the ties in arbitrary order, whose area differs from the (ties-count-one-half) c-statistic."""
    rng = np.random.default_rng(4)
    y = rng.random(300) < 0.35
    s = np.round(rng.normal(size=300) + 0.8 * y, 0)  # few distinct values: many ties
    fpr, tpr = _roc(y, s)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == pytest.approx(1) and tpr[-1] == pytest.approx(1)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert len(fpr) == len(np.unique(s)) + 1
