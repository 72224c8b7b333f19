"""Where a cohort came from: the built-in synthetic generator or a user's own data.

Every number computed on a synthetic cohort shows that the pipeline works, not that it is right about
patients; reports, figures and model cards say so when :func:`looks_synthetic` is true.

    >>> import pandas as pd
    >>> looks_synthetic(pd.DataFrame({"patient_id": ["SYN000001", "SYN000002"], "ecg_path": ["a.xml", "b.xml"]}))
    True
    >>> looks_synthetic(pd.DataFrame({"patient_id": ["12345", "67890"], "ecg_path": ["a.xml", "b.xml"]}))
    False
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def looks_synthetic(manifest: pd.DataFrame | None) -> bool:
    """True when the cohort came from ``elvmass synth`` (its patient IDs or its folder say so)."""
    if manifest is None or not len(manifest):
        return False
    ids = manifest.get("patient_id", pd.Series(dtype=object)).astype(str)
    synth_ids = ids.str.match(r"^(SYN|EXT)\d+$").mean() > 0.9
    paths = manifest.get("ecg_path", pd.Series(dtype=object)).astype(str).head(20)
    synth_dir = any((Path(p).resolve().parent.parent / "synth_config.json").is_file() for p in paths)
    return bool(synth_ids or synth_dir)
