"""Saliency: where in the beat eLVMass-Net looks (Pan et al. 2025, Table 3 and Figure 4).

Above models, below report: it imports :mod:`elvmass.models`, :mod:`elvmass.signal`,
:mod:`elvmass.features` and :mod:`elvmass.training` only.

=====================  ==========================================================================
name                   what it computes
=====================  ==========================================================================
gradient_saliency      |d LVM (g) / d input sample| over the model's (12, L) view (autograd;
                       ``smoothgrad`` / ``integrated_gradients`` through Captum)
segment_shares         per ECG, % of its total saliency in PR / QRS / ST-T / TP x LL / PL, from that
                       ECG's own fiducials; unknown boundaries are listed in ``missing``
saliency_table         Table 3: LVM tertiles x segment x lead group, mean % (all cases, and the
                       paper's 5 per tertile chosen by seed)
fold_saliency          saliency of each fold model on its own out-of-fold test cases
figure_4               Figure 4: men / women x low, middle, high LVM from out-of-fold cases
plot_saliency          12-lead beat with the saliency as a heat map behind each lead (PNG)
saliency_for_record    one ECG of a bundle (the HTTP service and ``elvmass explain``)
=====================  ==========================================================================
"""

from elvmass.explain.saliency import (  # noqa: F401
    LEAD_GROUP_ROWS, METHODS, SEGMENTS, SegmentShares, gradient_saliency, masks_from_fiducials,
    saliency_for_record, segment_shares,
)
from elvmass.explain.table import (  # noqa: F401
    FoldModels, fold_saliency, saliency_table, table_3_csv, table_3_display, table_3_markdown, write_table_3,
)
from elvmass.explain.figure import figure_4, plot_figure_4, plot_saliency  # noqa: F401

__all__ = ["LEAD_GROUP_ROWS", "METHODS", "SEGMENTS", "SegmentShares", "gradient_saliency", "masks_from_fiducials",
           "saliency_for_record", "segment_shares", "FoldModels", "fold_saliency", "saliency_table", "write_table_3",
           "table_3_csv", "table_3_display", "table_3_markdown",
           "figure_4", "plot_figure_4", "plot_saliency"]
