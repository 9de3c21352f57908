import json
import math
import os
import subprocess
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


# --------------------------------------------------------------------------
# paired statistics, config-defined cells, paper rows, CoLA accuracy, outputs
# --------------------------------------------------------------------------
from cod_pipeline import stats  # noqa: E402

T_975_DF4 = 2.7764451051977987  # Student t quantile 0.975 with 4 df (from tables)


def make_config(root: Path, name: str, *, dataset="rotten_tomatoes", model="minilm", method="kd",
                augment="none", alpha=20.0, k=16, seed=0, cfe="search", lr=6e-5):
    """A resolved config as the pipeline writes it, with the per-run noise (paths, output dirs,
    hydra, logger, trainer, threads) that must not split cells."""
    students = {"deberta_v3": "deberta-v3-xsmall", "qwen2_5": "Qwen2.5-0.5B", "minilm": "minilm-l3"}
    return {
        "task_name": "table", "stage": "student", "k": k, "seed": seed, "threads": 2, "resume": True,
        "compare": [], "paths": {"root_dir": str(root), "output_dir": str(root / name), "cache_dir": "/c"},
        "dataset": {"name": dataset, "primary_metric": "mcc" if dataset == "cola" else "accuracy",
                    "path": f"/data/{name}"},
        "model": {"name": model, "student": {"name": students.get(model, model), "path": f"/hub/{name}"},
                  "student_training": {"lr": lr, "epochs": 100}},
        "method": {"name": method, "alpha": alpha, "temperature": 2.0},
        "augment": {"name": augment, "paired": augment not in ("none", "half")},
        "cfe": {"name": cfe, "max_attempts": 1},
        "trainer": {"accelerator": "cpu", "devices": 1}, "logger": {"csv": {"save_dir": str(root / name)}},
        "hydra": {"job": {"num": seed}},
    }


def write_full(root: Path, name: str, *, dataset="rotten_tomatoes", model="minilm", method="kd",
               augment="none", alpha=20.0, k=16, seed=0, acc=0.66, mcc=0.31, cfe="search", lr=6e-5, mtime=None):
    p = write_result(root, name, dataset=dataset, method=method, augment=augment, alpha=alpha, k=k, seed=seed,
                     acc=acc, mcc=mcc)
    r = json.loads(p.read_text())
    r["model"] = model
    r["config"] = make_config(root, name, dataset=dataset, model=model, method=method, augment=augment,
                              alpha=alpha, k=k, seed=seed, cfe=cfe, lr=lr)
    p.write_text(json.dumps(r))
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


# differences CoD − KD per seed in accuracy points, and the t CI computed by hand
DIFFS = [1.0, 2.0, 3.0, 4.0, -1.0]
D_MEAN = 1.8
D_SD = math.sqrt(((1 - 1.8) ** 2 + (2 - 1.8) ** 2 + (3 - 1.8) ** 2 + (4 - 1.8) ** 2 + (-1 - 1.8) ** 2) / 4)
D_HALF = T_975_DF4 * D_SD / math.sqrt(5)


def test_paired_gain_t_by_hand():
    g = stats.paired_gain([70 + d for d in DIFFS], [70.0] * 5)
    assert g["mean"] == pytest.approx(D_MEAN)
    assert g["std"] == pytest.approx(D_SD)
    assert g["lo"] == pytest.approx(D_MEAN - D_HALF) and g["hi"] == pytest.approx(D_MEAN + D_HALF)
    assert (g["lo"], g["hi"]) == (pytest.approx(-0.58839, abs=1e-4), pytest.approx(4.18839, abs=1e-4))
    assert (g["wins"], g["ties"], g["losses"], g["n"], g["ci_method"]) == (4, 0, 1, 5, "t")
    # one pair: a mean but no interval; none: NaN and zero counts
    one = stats.paired_gain([3.0], [1.0])
    assert one["mean"] == 2.0 and math.isnan(one["lo"]) and one["wins"] == 1
    none = stats.paired_gain([], [])
    assert none["n"] == 0 and math.isnan(none["mean"])
    with pytest.raises(ValueError):
        stats.paired_gain([1.0, 2.0], [1.0])


def test_paired_gain_bootstrap():
    t, b = [70 + d for d in DIFFS], [70.0] * 5
    g = stats.paired_gain(t, b, ci="bootstrap", n_boot=4000)
    assert g["ci_method"] == "bootstrap" and g["mean"] == pytest.approx(D_MEAN) and g["wins"] == 4
    assert min(DIFFS) <= g["lo"] < D_MEAN < g["hi"] <= max(DIFFS)
    assert g == stats.paired_gain(t, b, ci="bootstrap", n_boot=4000)  # seeded: reproducible
    const = stats.paired_gain([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], ci="bootstrap")
    assert (const["lo"], const["hi"]) == (pytest.approx(1.0), pytest.approx(1.0))
    # aligned by seed
    g2 = stats.paired_gain_by_seed({0: 3.0, 1: 5.0, 2: 9.0}, {1: 4.0, 2: 8.0, 7: 0.0})
    assert g2["seeds"] == [1, 2] and g2["n"] == 2 and g2["mean"] == pytest.approx(1.0)
    assert "t" in stats.ci_label("t") and "bootstrap" in stats.ci_label("bootstrap")


@pytest.fixture
def paired(tmp_path):
    root = tmp_path / "paired"
    kd = [0.70, 0.72, 0.74, 0.70, 0.71]
    half = [-2.0, 1.0, 0.0, 3.0, 2.0]  # CoD − KD(k/2), in points
    for s, a in enumerate(kd):
        write_full(root, f"kd_{s}", seed=s, acc=a)
        write_full(root, f"cod_{s}", augment="cod", seed=s, acc=a + DIFFS[s] / 100)
        write_full(root, f"half_{s}", augment="half", seed=s, acc=a + (DIFFS[s] - half[s]) / 100)
    return root, half


def test_gain_ci_and_wins_in_table(paired):
    root, half = paired
    agg = report.aggregate(report.collect([root]), "accuracy")
    assert set(agg.variant) == {"kd", "kd+half", "kd+cod"}  # output dirs / paths / hydra never split cells
    cod = agg[agg.variant == "kd+cod"].iloc[0]
    assert cod["baseline"] == "kd" and cod["n_pairs"] == 5 and cod["wins"] == 4 and cod["ci_method"] == "t"
    assert cod["gain_mean"] == pytest.approx(D_MEAN)
    assert cod["gain_lo"] == pytest.approx(D_MEAN - D_HALF) and cod["gain_hi"] == pytest.approx(D_MEAN + D_HALF)
    # vs KD(k/2): differences -2, 1, 0, 3, 2 -> mean 0.8, 3 wins, 1 tie
    h_sd = np.std(half, ddof=1)
    assert cod["baseline_half"] == "kd+half" and cod["n_pairs_half"] == 5
    assert cod["gain_half_mean"] == pytest.approx(0.8)
    assert cod["gain_half_hi"] - cod["gain_half_mean"] == pytest.approx(T_975_DF4 * h_sd / math.sqrt(5))
    assert (cod["wins_half"], cod["ties_half"]) == (3, 1)
    md = report.render_markdown(agg)
    assert "+1.8 [−0.6, +4.2] 4/5" in md
    assert "Δ kd+cod vs kd+half" in md and "+0.8 [" in md and "] 3/5" in md
    assert "Student t" in md and "mean ± std over 5 seeds" in md
    assert "Δ kd+half" not in md  # the baselines have no gain row


def test_gain_pairs_only_shared_seeds(tmp_path):
    for s, (a, d) in enumerate(zip([0.70, 0.72, 0.74], [1.0, 3.0, 50.0])):
        write_full(tmp_path, f"kd_{s}", seed=s, acc=a)
        if s < 2:
            write_full(tmp_path, f"cod_{s}", augment="cod", seed=s, acc=a + d / 100)
    write_full(tmp_path, "cod_9", augment="cod", seed=9, acc=0.99)  # no KD partner: not paired
    cod = report.aggregate(report.collect([tmp_path]), "accuracy").query("variant == 'kd+cod'").iloc[0]
    assert cod["n_pairs"] == 2 and cod["wins"] == 2 and cod["gain_mean"] == pytest.approx(2.0)
    assert cod["n"] == 3  # the cell itself still has all its runs


def test_cli_bootstrap_and_outputs(paired, tmp_path, capsys):
    root, _ = paired
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out), "--ci", "bootstrap", "--n-boot", "2000"]) == 0
    csv = pd.read_csv(out / "table.csv")
    cod = csv[csv.variant == "kd+cod"].iloc[0]
    assert cod["ci_method"] == "bootstrap" and cod["wins"] == 4 and cod["n_pairs"] == 5
    assert {"gain_mean", "gain_lo", "gain_hi", "wins", "n_pairs", "ci_method", "acc_mean"} <= set(csv.columns)
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 15 and set(runs.status) == {"kept"} and {"seed", "score", "path"} <= set(runs.columns)
    md = (out / "table.md").read_text()
    assert "bootstrap" in md and "Student t" not in md
    for f in ["plot_rotten_tomatoes.png", "plot_rotten_tomatoes.pdf", "plot_all.png", "plot_all.pdf",
              "gain_rotten_tomatoes.png", "gain_rotten_tomatoes.pdf"]:  # the paired gain, beside the scores
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    tex = (out / "table.tex").read_text()
    assert r"\caption{" in tex and r"\label{tab:cod-rotten-tomatoes}" in tex and r"\textbf{" in tex
    assert r"\begin{table}" in tex and "±" not in tex and "Δ" not in tex
    assert "bootstrap" in capsys.readouterr().out


def test_runtime_settings_do_not_split_cells(tmp_path, capsys):
    """A result cached before ``cfe.runtime`` (runtime keys at their old places) and a new one with
    other runtime values are one cell, as they are one run hash."""
    for name, cfe, seed in (("old", {"chunk_size": 16, "llm": {"model": "m", "max_in_flight": 8}}, 0),
                            ("new", {"llm": {"model": "m"}, "runtime": {"chunk_size": 4, "max_in_flight": 2}}, 1)):
        p = write_full(tmp_path, name, augment="cod", cfe="openai", seed=seed)
        r = json.loads(p.read_text())
        r["config"]["cfe"].update(cfe)
        p.write_text(json.dumps(r))
    agg = report.aggregate(report.collect([tmp_path]), "accuracy")
    assert list(agg.variant) == ["kd+cod"] and agg.iloc[0]["n"] == 2
    assert "MERGED" not in capsys.readouterr().err


def test_two_generators_are_two_cells(tmp_path, capsys):
    write_full(tmp_path, "kd", acc=0.70)
    write_full(tmp_path, "cod_search", augment="cod", cfe="search", acc=0.72)
    write_full(tmp_path, "cod_openai", augment="cod", cfe="openai", acc=0.76)
    df = report.collect([tmp_path])
    agg = report.aggregate(df, "accuracy")
    err = capsys.readouterr().err
    assert "duplicate" not in err and "MERGED" not in err
    assert set(agg.variant) == {"kd", "kd+cod [cfe.name=openai]", "kd+cod [cfe.name=search]"}
    by = agg.set_index("variant")
    assert by.at["kd+cod [cfe.name=openai]", "mean"] == pytest.approx(76.0)
    assert by.at["kd+cod [cfe.name=search]", "mean"] == pytest.approx(72.0)
    assert by.at["kd+cod [cfe.name=openai]", "baseline"] == "kd"  # cfe.* is irrelevant to KD runs
    assert by.at["kd+cod [cfe.name=search]", "gain_mean"] == pytest.approx(2.0)

    # a --group-by without cfe.name pools them: one cell, and one loud warning naming the key
    agg1 = report.aggregate(df, "accuracy", group_by=["dataset", "method", "augment", "k"])
    err = capsys.readouterr().err
    assert set(agg1.variant) == {"kd", "kd+cod"}
    cell = agg1[agg1.variant == "kd+cod"].iloc[0]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx(74.0)
    assert err.count("warning") == 1 and "cfe.name" in err and "MERGED" in err and "duplicate" not in err
    assert agg1.attrs["merged_keys"] == ["cfe.name"]
    assert "cfe.name" in report.render_markdown(agg1)
    # naming the key keeps the split
    agg2 = report.aggregate(df, "accuracy", group_by=["cfe.name"])
    assert len(set(agg2.variant)) == 3 and "MERGED" not in capsys.readouterr().err

    # CLI flag
    assert report.main([str(tmp_path), "--out", str(tmp_path / "o"), "--group-by", "dataset,k"]) == 0
    assert "cfe.name" in capsys.readouterr().err
    runs = pd.read_csv(tmp_path / "o" / "runs.csv")
    assert set(runs["config.cfe.name"].dropna()) == {"openai", "search"}


def test_true_duplicates_with_config(tmp_path, capsys):
    now = time.time()
    write_full(tmp_path, "old", augment="cod", cfe="openai", acc=0.50, mtime=now - 100)
    write_full(tmp_path, "new", augment="cod", cfe="openai", acc=0.60, mtime=now)
    write_full(tmp_path, "other_lr", augment="cod", cfe="openai", acc=0.70, lr=1e-4, mtime=now)
    agg, runs = report.build(report.collect([tmp_path]), "accuracy")
    err = capsys.readouterr().err
    assert "dropped 1 duplicate" in err
    assert sorted(runs.status) == ["duplicate", "kept", "kept"]
    assert set(agg.variant) == {"kd+cod [model.student_training.lr=0.0001]",
                                "kd+cod [model.student_training.lr=6e-05]"}
    assert agg.set_index("variant").at["kd+cod [model.student_training.lr=6e-05]", "mean"] == pytest.approx(60.0)


def test_paper_rows_beside_reproduced(tmp_path):
    for s in range(2):
        write_full(tmp_path, f"d_kd_{s}", model="deberta_v3", dataset="sst2", k=8, seed=s, acc=0.60)
        write_full(tmp_path, f"d_cod_{s}", model="deberta_v3", dataset="sst2", augment="cod", k=8, seed=s, acc=0.70)
        write_full(tmp_path, f"d_kd0_{s}", model="deberta_v3", dataset="sst2", alpha=0.0, k=8, seed=s, acc=0.5)
        write_full(tmp_path, f"q_kd_{s}", model="qwen2_5", dataset="sst2", k=8, seed=s, acc=0.60)
        write_full(tmp_path, f"m_kd_{s}", model="minilm", dataset="sst2", k=8, seed=s, acc=0.60)
    agg = report.aggregate(report.collect([tmp_path]), "accuracy")
    by = agg.set_index("variant")
    # Table 5 (DeBERTa), sst2, k=8: KD 0.591 ± 0.040, KD+CoD 0.685 ± 0.112
    assert by.at["deberta_v3/kd", "paper_mean"] == pytest.approx(59.1)
    assert by.at["deberta_v3/kd", "paper_std"] == pytest.approx(4.0)
    assert by.at["deberta_v3/kd+cod", "paper_mean"] == pytest.approx(68.5)
    assert "Table 5" in by.at["deberta_v3/kd", "paper_source"]
    assert "Table 6" in by.at["qwen2_5/kd", "paper_source"]
    assert np.isnan(by.at["minilm/kd", "paper_mean"])  # not a paper pair
    assert np.isnan(by.at["deberta_v3/kd (α=0)", "paper_mean"])  # an ablation, not the paper's setting
    md = report.render_markdown(agg)
    lines = md.splitlines()
    i = next(j for j, line in enumerate(lines) if "| deberta_v3/kd+cod |" in line)
    assert "paper deberta_v3/kd+cod (Table 5)" in lines[i + 1] and "68.5 ± 11.2" in lines[i + 1]
    assert "| paper minilm" not in md
    assert "paper deberta" in report.render_latex(agg)
    assert "paper" not in " ".join(report.aggregate(report.collect([tmp_path]), "accuracy", paper=False)
                                   .paper_source.dropna())


def test_cola_accuracy_beside_mcc(tmp_path):
    for s, (a, m) in enumerate([(0.65, 0.30), (0.67, 0.32)]):
        write_full(tmp_path, f"c_{s}", dataset="cola", model="deberta_v3", k=16, seed=s, acc=a, mcc=m)
    agg = report.aggregate(report.collect([tmp_path]), "auto")
    row = agg.iloc[0]
    assert row["metric"] == "mcc" and row["mean"] == pytest.approx(31.0)
    assert row["acc_mean"] == pytest.approx(66.0) and row["acc_std"] == pytest.approx(math.sqrt(2))
    md = report.render_markdown(agg)
    assert "31.0 ± 1.4 (acc 66.0 ± 1.4)" in md
    # the paper reports CoLA accuracy (Table 5, kd, k=16: 0.735 ± 0.052), labelled as such
    assert "acc 73.5 ± 5.2" in md and "accuracy ± std" in md


def test_each_dataset_has_its_own_k_columns(tmp_path):
    write_full(tmp_path, "a8", dataset="sst2", k=8)
    write_full(tmp_path, "a16", dataset="sst2", k=16)
    write_full(tmp_path, "b32", dataset="imdb", k=32)
    md = report.render_markdown(report.aggregate(report.collect([tmp_path]), "accuracy"))
    sst2 = md.split("### sst2")[1].split("###")[0]
    imdb = md.split("### imdb")[1].split("###")[0]
    assert "k=8" in sst2 and "k=16" in sst2 and "k=32" not in sst2
    assert "k=32" in imdb and "k=8" not in imdb


def test_cfe_quality_table_from_the_runs_cfe_sets(tmp_path):
    root = tmp_path / "multirun"
    for s, (valid, faith) in enumerate([(1.0, 0.5), (0.8, 0.7)]):
        p = write_result(root, f"cod_{s}", augment="cod", seed=s, acc=0.7)
        r = json.loads(p.read_text())
        r["cfe"] = {"generator": "lm_search", "validity": valid, "faithfulness": faith, "edited_words_mean": 1.5,
                    "judge": {"family": "ngram-logreg", "test": {"accuracy": 0.8}}, "judge_test_accuracy": 0.8}
        p.write_text(json.dumps(r))
        write_result(root, f"kd_{s}", seed=s, acc=0.65)
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out)]) == 0
    q = pd.read_csv(out / "cfe_quality.csv")
    assert len(q) == 1 and q.iloc[0]["seeds"] == 2  # KD has no CFE set: no row
    assert q.iloc[0]["faithfulness"] == pytest.approx(0.6) and q.iloc[0]["validity"] == pytest.approx(0.9)
    assert q.iloc[0]["judge"] == "ngram-logreg" and "0.60" in (out / "cfe_quality.md").read_text()


def test_report_logs_its_tables_and_files_to_wandb(paired, tmp_path, monkeypatch):
    """``--wandb``: one run of job_type=report, its table as a W&B table with numeric columns, and
    every file written as one artifact (offline here)."""
    import json as _json

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").mkdir()
    root, _ = paired
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out), "--wandb", "proj"]) == 0
    runs = list((tmp_path / "wandb").rglob("offline-run-*"))
    assert len(runs) == 1
    tables = list(runs[0].rglob("media/table/table_*.table.json"))
    assert tables
    table = _json.loads(tables[0].read_text())
    col = table["columns"].index("gain_mean")
    assert any(isinstance(r[col], float) for r in table["data"])  # numbers logged as numbers
    record = next(runs[0].glob("run-*.wandb")).read_bytes()  # the run's log, with its artifact's manifest
    for name in ("table.csv", "table.md", "table.tex", "gain_rotten_tomatoes.png"):
        assert name.encode() in record, name


def test_report_refuses_zero_resamples(paired, tmp_path, capsys):
    root, _ = paired
    assert report.main([str(root), "--out", str(tmp_path / "o"), "--ci", "bootstrap", "--n-boot", "0"]) == 2
    assert "at least 1 resample" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_majority_class_score_per_metric():
    assert report.majority_score(0.6, 2, "accuracy") == pytest.approx(60.0)
    assert report.majority_score(0.6, 2, "mcc") == 0.0
    # always answering the majority class: its F1 is 2p/(1+p), the other class's 0
    assert report.majority_score(0.6, 2, "macro_f1") == pytest.approx(100 * 0.75 / 2)
    assert math.isnan(report.majority_score(0.6, 2, "agreement"))


def test_majority_line_from_the_runs_test_sets(tmp_path):
    root = tmp_path / "multirun"
    for s in range(2):
        for aug, acc in (("none", 0.7), ("cod", 0.75)):
            p = write_result(root, f"{aug}_{s}", augment=aug, seed=s, acc=acc)
            r = json.loads(p.read_text())
            r["student"]["test"]["majority"] = 0.58
            p.write_text(json.dumps(r))
    agg = report.aggregate(report.collect(root))
    assert list(agg["majority"]) == [pytest.approx(58.0)] * len(agg)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    report._draw_panel(ax, agg, {v: "C0" for v in agg["variant"]}, {"none": "--", "cod": "-"},
                       {v: 1.0 for v in agg["variant"]}, False)
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["majority class"].get_ydata()) == [pytest.approx(58.0)] * 2
    plt.close(fig)


def test_latex_table_of_example_cfes(tmp_path):
    root = tmp_path / "multirun"
    samples = [{"original": "a dull & lifeless film", "cfe": "a vivid & lifeless film", "orig_probs": [0.9, 0.1],
                "cfe_probs": [0.2, 0.8], "judge_label": "positive"},
               {"original": "it works", "cfe": "it does not work", "orig_probs": [0.1, 0.9],
                "cfe_probs": [0.7, 0.3], "judge_label": "positive"}]
    for s in range(2):  # the same CFE set read by two seeds: each example once
        p = write_result(root, f"cod_{s}", augment="cod", seed=s)
        r = json.loads(p.read_text())
        r["cfe"] = {"generator": "lm_reader", "validity": 1.0, "samples": samples}
        r["config"] = {"dataset": {"label_names": ["negative", "positive"]}}
        p.write_text(json.dumps(r))
    out = tmp_path / "out"
    assert report.main([str(root), "--out", str(out), "--no-paper"]) == 0
    tex = (out / "cfe_examples.tex").read_text()
    assert tex.count(r"\begin{table}") == 1 and tex.count("lifeless") == 2  # original and CFE, escaped once each
    assert r"a \sout{dull} \textbf{vivid} \& lifeless film" in tex
    assert r"negative $\rightarrow$ positive" in tex and r"positive $\rightarrow$ negative" in tex
    assert r"does not work" in tex.replace(r"\textbf{", "").replace("}", "")
    assert tex.count(r" \\") == 3  # header + one row per distinct example


def test_non_finite_scores_and_k_below_one_are_skipped_with_a_warning(sweep, capsys):
    bad = write_result(sweep, "inf_run", augment="cod", k=16, seed=7, acc=0.7)
    r = json.loads(bad.read_text())
    r["student"]["test"]["accuracy"] = float("inf")
    r["teacher"] = {"test": {"accuracy": float("nan")}}
    bad.write_text(json.dumps(r))  # json writes Infinity / NaN, and reads them back
    write_result(sweep, "k0_run", k=0, seed=8)
    df = report.collect(sweep)
    err = capsys.readouterr().err
    assert "inf_run/result.json: student.test accuracy=inf is not a finite number" in err
    assert "k0_run/result.json: k=0" in err
    assert len(df) == 7 and df["k"].min() >= 8
    md = report.render_markdown(report.aggregate(df))
    assert "inf" not in md and "nan" not in md.lower()


def test_a_read_only_results_folder_is_one_line_unless_out_is_given(sweep, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(sweep), str(ro)], capture_output=True).returncode:
        pytest.skip("a read-only bind mount needs root")
    try:
        assert report.main([str(ro)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: cannot write the report to {ro / 'report'}")
        assert "--out" in err[0]
        assert report.main([str(ro), "--out", str(tmp_path / "out")]) == 0
        assert (tmp_path / "out" / "table.md").exists()
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_runs_on_other_local_files_are_other_cells(tmp_path, capsys):
    """The config drops file paths (a moved folder is the same data), so two runs on different
    files used to be 'duplicates' of one config and seed; result.json's ``data`` (files by name and
    content, ``cache.data_identity``) keeps them apart."""
    from cod_pipeline.cache import data_identity
    from tests.conftest import write_sentiment_tsv

    a, b = write_sentiment_tsv(tmp_path / "a.tsv", 100), write_sentiment_tsv(tmp_path / "b.tsv", 120)
    ids = [data_identity({"source": {"path": str(p)}}) for p in (a, b)]
    assert ids[0].startswith("a.tsv#") and ids[1].startswith("b.tsv#") and ids[0][6:] != ids[1][6:]
    assert data_identity({"source": {"path": str(a), "test_path": str(b)}}) == f"{ids[0]} + {ids[1]}"
    assert data_identity({"source": {"_target_": "cod_pipeline.data.sources.rotten_tomatoes"}}) is None
    root = tmp_path / "runs"
    for name, ident, acc in (("on_a", ids[0], 0.6), ("on_b", ids[1], 0.7)):
        p = write_full(root, name, acc=acc)
        r = json.loads(p.read_text())
        r["data"] = ident
        p.write_text(json.dumps(r))
    agg, runs = report.build(report.collect([root]), "accuracy")
    assert "duplicate" not in capsys.readouterr().err and list(runs.status) == ["kept", "kept"]
    assert sorted(agg["variant"]) == [f"kd [data={ids[0]}]", f"kd [data={ids[1]}]"]
