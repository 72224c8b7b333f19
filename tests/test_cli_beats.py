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
    assert {"path", "r_peaks_s", "beat", "flags", "fiducials_ms", "measured", "criteria"} <= set(a)  # kept keys
    assert set(a["fiducials_ms"]) == {"p_on", "p_off", "qrs_on", "qrs_off", "t_off"}
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


def test_beats_view_option_changes_json_and_plot(shared_data, tmp_path):
    """Issue #17 item 9: --view used to change nothing (JSON and plot byte-identical to single_beat)."""
    ptb = shared_data / "ptbxl-sample/records500/00000/00002_hr.hea"
    out, plots = {}, {}
    for view in ("single_beat", "median_beat", "full", "random_crop"):
        png = tmp_path / f"{view}.png"
        res = runner.invoke(app, ["beats", str(ptb), "--json", "--view", view, "--plot", str(png)])
        assert res.exit_code == 0, res.output
        out[view] = json.loads(res.stdout)
        plots[view] = png.read_bytes()
    assert {v: d["view"]["name"] for v, d in out.items()} == {v: v for v in out}
    assert out["single_beat"]["view"]["n_samples"] == 225 and out["full"]["view"]["n_samples"] == 2500  # 250 Hz
    assert out["full"]["view"]["start_s"] == 0.0 and out["full"]["view"]["end_s"] == 10.0
    crop = out["random_crop"]["view"]
    assert 2.0 <= crop["end_s"] - crop["start_s"] <= 4.0
    assert out["single_beat"]["view"]["start_s"] == out["single_beat"]["beat"]["start_s"]
    assert len(set(plots.values())) == 4  # four different pictures
    assert len({json.dumps(d, sort_keys=True) for d in out.values()}) == 4


def test_unusable_record_gets_no_criteria_or_axes(shared_data):
    """Issue #17 item 14: PTB-XL 00017 (burst noise: noisy leads, excessive_noise) is unusable; its criteria
    and axes must not be printed or returned as findings."""
    noisy = shared_data / "ptbxl-sample/records500/00000/00017_hr.hea"
    res = runner.invoke(app, ["beats", str(noisy)])
    assert res.exit_code == 0, res.output
    assert "excessive_noise" in res.stdout
    assert "Sokolow-Lyon" not in res.stdout and "axes P" not in res.stdout
    assert "not reported: unusable ECG" in res.stdout
    res = runner.invoke(app, ["beats", str(noisy), "--json"])
    d = json.loads(res.stdout)
    assert d["usable"] is False
    assert all(v is None for v in d["measured"].values()) and all(v is None for v in d["criteria"].values())
    good = json.loads(runner.invoke(app, ["beats", str(shared_data / "vendor/ge-muse-xml/muse_ecg1.xml"), "--json"]).stdout)
    assert good["usable"] is True and good["criteria"]["sokolow_lyon_positive"] is False


def test_beat_plot_is_calibrated_10_mm_per_mv_with_a_grid(shared_data):
    """Issue #17 item 19: one scale for all leads (10 mm/mV, 50 mm/s) on a mm grid, tall waves not clipped."""
    import numpy as np

    from elvmass.io.plot import beat_figure

    beat = np.zeros((12, 450))
    beat[0, 200:210] = 4.0  # a 4-mV R wave: taller than the 2.5 mV between leads
    fig = beat_figure(beat, 500.0, title="t")
    ax = fig.axes[0]
    (x0, y0), (x1, y1) = ax.transData.transform([(0, 0), (50, 10)])
    mm_per_px = 25.4 / fig.dpi
    assert abs((y1 - y0) * mm_per_px - 10.0) < 0.01  # 1 mV = 10 mm of paper
    assert abs((x1 - x0) * mm_per_px - 50.0) < 0.01  # 1 s = 50 mm
    traces = [ln for ln in ax.lines if len(ln.get_xdata()) == 450]
    assert len(traces) == 12 and not any(ln.get_clip_on() for ln in traces)
    assert np.ptp(traces[0].get_ydata()) == 40.0  # 4 mV drawn as 40 mm, into the next lead's row
    assert len(ax.collections) == 2  # minor and major grid


def test_no_tp_segment_when_there_is_none(shared_data):
    """Issue #17 item 19: with T ending at the window's edge and no P wave, there is no TP segment to list."""
    import dataclasses
    import math

    from elvmass import read_ecg
    from elvmass.io.plot import beat_figure
    from elvmass.signal import analyze_ecg

    a = analyze_ecg(read_ecg(shared_data / "ptbxl-sample/records500/00000/00152_hr.hea"))  # AF: no P wave
    end_ms = (a.beat_end_s - a.beat_start_s) * 1000.0
    b = dataclasses.replace(a, fiducials_ms={**a.fiducials_ms, "t_off": end_ms - 2.0})
    assert math.isnan(b.fiducials_ms["p_on"])
    assert b.segments_ms["tp"] == []
    fig = beat_figure(b.view, 250.0, fiducials_ms=b.fiducials_ms, segments_ms=b.segments_ms)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["qrs", "st_t"]
