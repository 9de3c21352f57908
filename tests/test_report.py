import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cod_pipeline import report  # noqa: E402


TEACHER = {"test": {"accuracy": 0.80, "macro_f1": 0.79, "mcc": 0.59}}


def write_result(root: Path, name: str, *, dataset="rotten_tomatoes", method="kd", augment="none",
                 alpha=20.0, k=16, seed=0, acc=0.66, mcc=0.31, stage="student", teacher=TEACHER,
                 primary=None, mtime=None):
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    r = {
        "schema": 1, "run_hash": name, "stage": stage, "dataset": dataset, "model": "minilm",
        "method": method, "augment": augment, "alpha": alpha, "k": k, "seed": seed,
        "primary_metric": primary or ("mcc" if dataset == "cola" else "accuracy"),
        "teacher": teacher,
        "student": {"test": {"accuracy": acc, "macro_f1": acc - 0.01, "mcc": mcc, "agreement": 0.7},
                    "selection": "val"},
        "cfe": None, "timings_s": {}, "config": {},
    }
    p = d / "result.json"
    p.write_text(json.dumps(r))
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multirun"
    # kd, k=16: 0.70 0.72 0.74 -> 72.0 ± 2.0 ; kd+cod k=16: 0.75 0.77 0.79 -> 77.0 ± 2.0
    for s, a in enumerate([0.70, 0.72, 0.74]):
        write_result(root, f"kd_16_{s}", method="kd", k=16, seed=s, acc=a)
        write_result(root, f"cod_16_{s}", method="kd", augment="cod", k=16, seed=s, acc=a + 0.05)
    # k=8: kd single seed, kd+cod missing -> hole
    write_result(root, "kd_8_0", method="kd", k=8, seed=0, acc=0.60)
    return root


def test_mean_std_and_gain(sweep):
    agg = report.aggregate(report.collect([sweep]), "accuracy")
    row = agg[(agg.variant == "kd") & (agg.k == 16)].iloc[0]
    assert row["mean"] == pytest.approx(72.0)
    assert row["std"] == pytest.approx(2.0)
    assert row["n"] == 3
    cod = agg[(agg.variant == "kd+cod") & (agg.k == 16)].iloc[0]
    assert cod["gain"] == pytest.approx(5.0)
    assert cod["baseline"] == "kd"
    md = report.render_markdown(agg)
    assert "72.0 ± 2.0" in md and "77.0 ± 2.0" in md
    assert "+5.0" in md
    assert "60.0 ± –" in md  # single seed


def test_negative_gain_uses_minus(tmp_path):
    write_result(tmp_path, "a", method="kd", acc=0.70)
    write_result(tmp_path, "b", method="kd", augment="cod", acc=0.688)
    md = report.render_markdown(report.aggregate(report.collect([tmp_path]), "accuracy"))
    assert "−1.2" in md


def test_missing_cells(sweep):
    agg = report.aggregate(report.collect([sweep]), "accuracy")
    assert len(agg) == 2 * 2  # variants x ks, full grid
    hole = agg[(agg.variant == "kd+cod") & (agg.k == 8)].iloc[0]
    assert hole["n"] == 0 and np.isnan(hole["mean"]) and np.isnan(hole["gain"])
    md = report.render_markdown(agg)
    cod_line = next(line for line in md.splitlines() if "| kd+cod |" in line)
    assert "—" in cod_line


def test_teacher_score(sweep, tmp_path):
    # a teacher-stage JSON for another dataset contributes a teacher score
    write_result(sweep, "teacher_sst2", dataset="sst2", stage="teacher",
                 teacher={"test": {"accuracy": 0.90, "macro_f1": 0.9, "mcc": 0.8}})
    agg = report.aggregate(report.collect([sweep]), "accuracy")
    assert agg.loc[agg.dataset == "rotten_tomatoes", "teacher"].iloc[0] == pytest.approx(80.0)
    assert agg.loc[agg.dataset == "sst2", "teacher"].iloc[0] == pytest.approx(90.0)
    assert (agg.loc[agg.dataset == "sst2", "n"] == 0).all()  # whole dataset shown as holes
    md = report.render_markdown(agg)
    assert "| 80.0 |" in md and "| 90.0 |" in md


def test_metric_auto_cola(tmp_path):
    write_result(tmp_path, "c", dataset="cola", acc=0.70, mcc=0.25,
                 teacher={"test": {"accuracy": 0.8, "macro_f1": 0.7, "mcc": 0.5}})
    write_result(tmp_path, "r", dataset="rotten_tomatoes", acc=0.70, mcc=0.25)
    agg = report.aggregate(report.collect([tmp_path]), "auto")
    cola = agg[agg.dataset == "cola"].iloc[0]
    rt = agg[agg.dataset == "rotten_tomatoes"].iloc[0]
    assert cola["metric"] == "mcc" and cola["mean"] == pytest.approx(25.0)
    assert cola["teacher"] == pytest.approx(50.0)
    assert rt["metric"] == "accuracy" and rt["mean"] == pytest.approx(70.0)


def test_alpha0_is_separate_variant_and_duplicates(tmp_path, capsys):
    now = time.time()
    write_result(tmp_path, "kd", acc=0.70)
    write_result(tmp_path, "kd0", alpha=0.0, acc=0.60)
    write_result(tmp_path, "cod0", alpha=0.0, augment="cod", acc=0.65)
    write_result(tmp_path, "old", method="lwd", acc=0.10, mtime=now - 100)
    write_result(tmp_path, "new", method="lwd", acc=0.50, mtime=now)
    agg = report.aggregate(report.collect([tmp_path]), "accuracy")
    assert {"kd", "kd (α=0)", "kd+cod (α=0)", "lwd"} == set(agg.variant)
    cod0 = agg[agg.variant == "kd+cod (α=0)"].iloc[0]
    assert cod0["baseline"] == "kd (α=0)" and cod0["gain"] == pytest.approx(5.0)
    assert agg[agg.variant == "lwd"]["mean"].iloc[0] == pytest.approx(50.0)
    assert agg.attrs["duplicates_dropped"] == 1
    assert "duplicate" in capsys.readouterr().err
    # ordering: method, then none before cod
    assert list(dict.fromkeys(agg.variant)) == ["kd", "kd (α=0)", "kd+cod (α=0)", "lwd"]


def test_corrupt_json_skipped(sweep, capsys):
    bad = sweep / "broken"
    bad.mkdir()
    (bad / "result.json").write_text("{not json")
    nofield = sweep / "nofield"
    nofield.mkdir()
    (nofield / "result.json").write_text(json.dumps({"stage": "student", "dataset": "x"}))
    df = report.collect([sweep])
    assert len(df) == 7
    err = capsys.readouterr().err
    assert "broken" in err and "nofield" in err and err.count("warning") == 2


def test_cli_writes_files(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    rc = report.main([str(sweep / "*"), "--out", str(out), "--metric", "auto"])
    assert rc == 0
    for f in ["table.csv", "table.md", "table.tex", "plot_rotten_tomatoes.png"]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    csv = pd.read_csv(out / "table.csv")
    assert {"dataset", "variant", "method", "augment", "alpha", "k", "mean", "std", "n", "metric"} <= set(csv.columns)
    hole = csv[(csv.variant == "kd+cod") & (csv.k == 8)].iloc[0]
    assert hole["n"] == 0 and np.isnan(hole["mean"])
    tex = (out / "table.tex").read_text()
    assert r"$\pm$" in tex and r"rotten\_tomatoes" in tex and "±" not in tex
    stdout = capsys.readouterr().out
    assert "72.0 ± 2.0" in stdout and "table.md" in stdout


def test_cli_default_out(sweep):
    assert report.main([str(sweep)]) == 0
    assert (sweep / "report" / "table.md").is_file()


def test_cli_no_results(tmp_path, capsys):
    rc = report.main([str(tmp_path / "empty")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_cli_glob_default_out(sweep):
    assert report.main([str(sweep) + "/kd_*"]) == 0
    assert (sweep / "report" / "table.csv").is_file()
