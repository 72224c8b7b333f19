"""``bench_delineation.py --ludb DIR --part unseen``: LUDB's records 121-200, which ../shared/data/ludb does
not hold and nothing here was tuned or trained on, are scored with every column (the hybrid's and the
segmentation network's included). Checked on a stand-in LUDB folder whose records 121 and 151 are LUDB
1 (sinus) and 51 (atrial fibrillation) under new numbers (links to the same files, in a temporary folder):
they must score exactly as the originals do."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LEADS = ("i", "ii", "iii", "avr", "avl", "avf", "v1", "v2", "v3", "v4", "v5", "v6")


def _bench():
    spec = importlib.util.spec_from_file_location("bench_delineation_unseen", REPO / "benchmarks" / "bench_delineation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stand_in_ludb(ludb: Path, out: Path, renumber: dict[int, int]) -> Path:
    (out / "data").mkdir(parents=True)
    with open(ludb / "ludb.csv", newline="", encoding="utf-8") as fh:
        rows = {int(r["ID"]): r for r in csv.DictReader(fh)}
    with open(out / "ludb.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(next(iter(rows.values()))))
        w.writeheader()
        for old, new in renumber.items():
            w.writerow({**rows[old], "ID": str(new)})
            lines = (ludb / "data" / f"{old}.hea").read_text().splitlines()
            lines = [lines[0].replace(f"{old} ", f"{new} ", 1)] + [x.replace(f"{old}.dat", f"{new}.dat", 1) for x in lines[1:]]
            (out / "data" / f"{new}.hea").write_text("\n".join(lines) + "\n")
            for ext in ("dat",) + LEADS:
                os.symlink(ludb / "data" / f"{old}.{ext}", out / "data" / f"{new}.{ext}")
    return out


def test_unseen_part_scores_records_past_120_with_every_column(shared_data, tmp_path):
    bench = _bench()
    assert bench.part_of(121) == "unseen" and bench.part_of(120) == "report" and bench.part_of(119) == "tune"
    fake = _stand_in_ludb(shared_data / "ludb", tmp_path / "ludb", {1: 121, 51: 151})
    assert bench.main(["--ludb", str(fake), "--part", "unseen", "--no-nk", "--json", str(tmp_path / "u.json")]) == 0
    unseen = json.loads((tmp_path / "u.json").read_text())
    assert [r["record"] for r in unseen["per_record"]] == [121, 151]
    for r in unseen["per_record"]:  # neither network was trained on records past 120: every column is scored
        assert {"err_ms", "segment_err_ms", "hybrid_err_ms"} <= set(r), r
    assert unseen["summary"]["chosen/af"]["hybrid"] and unseen["summary"]["chosen/sinus"]["segment_h"]
    bench = _bench()  # the default folder again
    assert bench.main(["--part", "all", "--records", "1", "51", "--no-nk", "--no-seg", "--no-hybrid",
                       "--json", str(tmp_path / "o.json")]) == 0
    original = json.loads((tmp_path / "o.json").read_text())
    assert [r["err_ms"] for r in unseen["per_record"]] == [r["err_ms"] for r in original["per_record"]]
    assert unseen["per_record"][1]["err_ms"]["p_on"] is None  # AF: no P wave reported


def test_a_folder_that_is_not_ludb_is_one_line_and_exit_2(tmp_path, capsys):
    assert _bench().main(["--ludb", str(tmp_path), "--part", "unseen", "--no-nk"]) == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path}: not a LUDB folder (no ludb.csv)"
