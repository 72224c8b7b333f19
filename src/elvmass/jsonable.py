"""Plain JSON values from what elvmass computes: one rule for results, bundles, caches and --json.

NaN and infinities become ``null`` (JSON has no NaN), NumPy scalars become Python numbers and
booleans, tuples become lists and mapping keys become strings.

    >>> import numpy as np
    >>> to_jsonable({"mae_g": np.float32(12.5), "p": float("nan"), "folds": (np.int64(1), True)})
    {'mae_g': 12.5, 'p': None, 'folds': [1, True]}
"""

from __future__ import annotations

import math

import numpy as np


def to_jsonable(obj):
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts (see the module docstring)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
