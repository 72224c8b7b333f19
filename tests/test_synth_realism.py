"""The realism benchmark (benchmarks/synth_realism.py) on a small cohort against the held-out real records:
PTB-XL strat_fold 9-10 and LUDB 91-120 (Wagner et al. 2020; Kalyakulina et al. 2020), which the beat
library was not fitted to. Slow (minutes): run with -m slow."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from elvmass.synth.realdata import real_records

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "synth_realism.py"


def test_fit_and_holdout_parts_are_disjoint_and_documented(shared_data):
    fit, hold = real_records(shared_data, part="fit"), real_records(shared_data, part="holdout")
    key = lambda r: (r.source, r.record_id)  # noqa: E731
    assert not {key(r) for r in fit} & {key(r) for r in hold}
    assert all(r.record_id > 90 for r in hold if r.source == "ludb")
    assert len(hold) >= 60 and len(fit) >= 150
    from elvmass.synth.templates import beat_library

    held = {f"{r.source}:{r.record_id}" for r in hold}
    assert not held & set(beat_library().source.tolist())  # no held-out record is in the library


@pytest.mark.slow
def test_synthetic_ecgs_are_hard_to_tell_from_held_out_real_ones(tmp_path, shared_data):
    spec = importlib.util.spec_from_file_location("synth_realism", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(150, 0, "internal", "holdout", tmp_path, shared=shared_data, cnn_epochs=20)
    assert res["a_logistic_beat"]["auc"] <= 0.80, res["a_logistic_beat"]
    assert res["b_boosting_parameters"]["auc"] <= 0.75, res["b_boosting_parameters"]
    assert (tmp_path / "parameters.png").stat().st_size > 10_000
