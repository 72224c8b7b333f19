"""Lead groups: which leads share an encoder.

``electrical`` (the paper's choice) splits the frontal-plane limb leads from the horizontal-plane
precordial leads; ``anatomical`` follows the LV wall each lead faces.

    >>> import numpy as np
    >>> from elvmass.signal import group_leads
    >>> parts = group_leads(np.zeros((12, 225), np.float32), "electrical")
    >>> [p.shape for p in parts]
    [(6, 225), (6, 225)]
"""

from __future__ import annotations

import numpy as np

from elvmass.record import LEAD_INDEX, LEADS

_I = LEAD_INDEX

#: grouping name -> list of groups, each a list of lead indices in :data:`elvmass.record.LEADS` order.
LEAD_GROUPS: dict[str, list[list[int]]] = {
    "none": [list(range(12))],
    "electrical": [
        [_I[n] for n in ("I", "II", "III", "aVR", "aVL", "aVF")],
        [_I[n] for n in ("V1", "V2", "V3", "V4", "V5", "V6")],
    ],
    "anatomical": [
        [_I[n] for n in ("V1", "V2", "V3", "V4")],  # septal / anterior
        [_I[n] for n in ("I", "aVL", "V5", "V6")],  # lateral
        [_I[n] for n in ("II", "III", "aVF")],  # inferior
        [_I[n] for n in ("aVR",)],  # cavity
    ],
}


def lead_group_names(grouping: str) -> list[list[str]]:
    """The lead names of each group, e.g. ``[["I", ..., "aVF"], ["V1", ..., "V6"]]``."""
    _check(grouping)
    return [[LEADS[i] for i in group] for group in LEAD_GROUPS[grouping]]


def group_leads(view: np.ndarray, grouping: str) -> list[np.ndarray]:
    """Split a view (12, L) - or a batch (B, 12, L) - into its lead groups along the lead axis (-2)."""
    _check(grouping)
    arr = np.asarray(view)
    if arr.ndim < 2 or arr.shape[-2] != 12:
        raise ValueError(f"view must have 12 leads on axis -2, got shape {arr.shape}")
    return [np.take(arr, group, axis=-2) for group in LEAD_GROUPS[grouping]]


def _check(grouping: str) -> None:
    if grouping not in LEAD_GROUPS:
        raise ValueError(f"lead grouping must be one of {sorted(LEAD_GROUPS)}, got {grouping!r}")
