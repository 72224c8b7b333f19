"""`elvmass beats` as a user runs it (typer CliRunner on the real app), on real files."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from elvmass.cli import app

runner = CliRunner()


def test_beats_json_one_object_per_file(shared_data):
    muse = shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"
    ptb = shared_data / "ptbxl-sample/records500/00000/00001_hr.hea"
    res = runner.invoke(app, ["beats", str(muse), str(ptb), "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert len(lines) == 2
    a = lines[0]
    assert a["path"] == str(muse)
    assert set(a) == {"path", "r_peaks_s", "beat", "flags", "fiducials_ms", "measured", "criteria"}
    assert len(a["r_peaks_s"]) == 10  # 60 bpm for 10 s
    assert abs(a["beat"]["end_s"] - a["beat"]["start_s"] - 0.9) < 1e-6
    assert abs(a["measured"]["qrs_ms"] - 78) <= 15 and abs(a["measured"]["r_axis_deg"] - 54) <= 20
    assert a["criteria"]["sokolow_lyon_positive"] is False
    assert lines[1]["flags"] == []


def test_beats_human_output_and_plot(shared_data, tmp_path):
    muse = shared_data / "vendor/ge-muse-xml/muse_ecg2.xml"
    out = tmp_path / "beat.png"
    res = runner.invoke(app, ["beats", str(muse), "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert "Sokolow-Lyon" in res.stdout and "QRS on" in res.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_beats_bad_file_is_one_error_line(shared_data, tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text("<RestingECG><Waveform>")
    good = shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"
    res = runner.invoke(app, ["beats", str(bad), str(good), "--json"])
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    assert "broken.xml" in res.stderr
    assert len(res.stdout.strip().splitlines()) == 1  # the good file is still reported


def test_beats_rejects_bad_option(shared_data):
    res = runner.invoke(app, ["beats", str(shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"), "--view", "two_beats"])
    assert res.exit_code == 2 and "view" in res.stderr


def test_beats_plot_problems_are_one_line_and_plots_go_into_a_folder(shared_data, tmp_path):
    muse = shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"
    (tmp_path / "file").write_text("")
    res = runner.invoke(app, ["beats", str(muse), "--json", "--plot", str(tmp_path / "file" / "beat.png")])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception  # not a traceback
    assert f"cannot write plot {tmp_path / 'file' / 'beat.png'}" in res.stderr
    (tmp_path / "plots").mkdir()
    ptb = shared_data / "ptbxl-sample/records500/00000/00001_hr.hea"
    res = runner.invoke(app, ["beats", str(muse), str(ptb), "--json", "--plot", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["00001_hr.png", "muse_ecg1.png"]


def test_beats_reads_array_files_with_the_rate_its_error_asks_for(shared_data, tmp_path):
    # the error for an array file says "give --fs-hz", so beats must have that option
    import numpy as np

    from elvmass import read_ecg

    np.save(tmp_path / "ecg.npy", read_ecg(shared_data / "ptbxl-sample/records500/00000/00001_hr").signal_mv)
    res = runner.invoke(app, ["beats", str(tmp_path / "ecg.npy"), "--json"])
    assert res.exit_code == 1 and "--fs-hz" in res.stderr
    res = runner.invoke(app, ["beats", str(tmp_path / "ecg.npy"), "--json", "--fs-hz", "500"])
    assert res.exit_code == 0, res.output
    ref = runner.invoke(app, ["beats", str(shared_data / "ptbxl-sample/records500/00000/00001_hr"), "--json"])
    assert json.loads(res.stdout)["r_peaks_s"] == json.loads(ref.stdout)["r_peaks_s"]


def test_beats_names_plots_like_inspect_and_expands_folders(shared_data, tmp_path):
    """Several files with one --plot name: beat.png, beat-2.png... (as `inspect` names them); a folder
    argument stands for the ECG files in it."""
    folder = shared_data / "vendor/ge-muse-xml"
    res = runner.invoke(app, ["beats", str(folder), "--json", "--plot", str(tmp_path / "beat.png")])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [Path(line["path"]).name for line in lines] == ["muse_ecg1.xml", "muse_ecg2.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beat-2.png", "beat.png"]
