"""Does CoD hold beyond movie reviews? KD, KD(k/2) and KD+CoD (cfe=lm_search) on several real
datasets, paired over seeds: mean ± std, CoD − KD and CoD − KD(k/2) with a 95% t CI and wins.

KD(k/2) at k is KD at k/2: the draws are nested and every student trains the same fixed number
of steps, so the two runs are the same run; it is trained once, as KD at k/2.

    python benchmarks/bench_cod_tasks.py --datasets tweets,subjectivity --ks 8,16 --seeds 0,1,2,3,4
    python benchmarks/bench_cod_tasks.py --report-only
    python benchmarks/bench_cod_tasks.py --tag same_pos --datasets subjectivity --ks 8,16,32 cfe.lm.same_pos=true
    python benchmarks/bench_cod_tasks.py --tag near_flip --ks 8,16,32 augment.on_failure=near_flip

``--tag`` keeps a variant's runs and table apart (``logs/bench_cod_tasks_<tag>``,
``results/bench_cod_tasks_<tag>.md``); KD runs are shared through the results cache, and ``augment.*``
overrides go to the CoD jobs only.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import ROOT, md_table, write

SWEEP = ROOT / "logs" / "bench_cod_tasks"  # the --tag's own folder beside it
DEFAULT_TAG = "screen"  # the sweep of today's defaults: a variant's table compares against it (--against)
SHARED = ROOT.parent / "shared" / "data"


def run(dataset: str, ks: list[int], seeds: str, cfe: str, extra: list[str], sweep: Path = SWEEP) -> None:
    env = {**os.environ, "SST2_DIR": os.environ.get("SST2_DIR", str(SHARED / "sst2")),
           "COLA_DIR": os.environ.get("COLA_DIR", str(SHARED / "cola"))}
    cod_only = [o for o in extra if o.lstrip("+~").startswith("augment.")]  # KD has no such keys
    common = [sys.executable, "run.py", "-m", f"dataset={dataset}", f"seed={seeds}", "compare=[]", "logger=none",
              f"cfe={cfe}", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
              "hydra.sweep.subdir=${dataset.name}/${augment.name}/k${k}/seed${seed}",
              *(o for o in extra if o not in cod_only)]
    kd_ks = sorted(set(ks) | {k // 2 for k in ks})
    jobs = [[f"k={','.join(map(str, kd_ks))}", "augment=none"], [f"k={','.join(map(str, ks))}", "augment=cod", *cod_only]]
    for job in jobs:
        subprocess.run(common + job, cwd=ROOT, check=True, env=env)


def load(sweep: Path = SWEEP) -> list[dict]:
    out = []
    for p in sweep.glob("*/*/k*/seed*/result.json"):
        r = json.loads(p.read_text())
        if r.get("stage") == "student":
            out.append(r)
    return out


def report(ks: list[int] | None, tag: str | None = None, command: str | None = None,
           against: str | None = DEFAULT_TAG) -> None:
    from cod_pipeline.stats import paired_gain_by_seed

    res = load(sweep_dir(tag))
    score, val = scores(res)
    rows, quality = [], []
    for ds in sorted({r["dataset"] for r in res}):
        metric = next(r["primary_metric"] for r in res if r["dataset"] == ds)
        teacher = next(100 * r["teacher"]["test"][metric] for r in res if r["dataset"] == ds)
        for k in sorted({r["k"] for r in res if r["dataset"] == ds and r["augment"] == "cod"}):
            if ks and k not in ks:
                continue
            kd, half, cod = (by_seed(score, ds, "none", k), by_seed(score, ds, "none", k // 2),
                             by_seed(score, ds, "cod", k))
            g, gh = paired_gain_by_seed(cod, kd), paired_gain_by_seed(cod, half)
            gv = paired_gain_by_seed(by_seed(val, ds, "cod", k), by_seed(val, ds, "none", k))
            fmt = lambda d: f"{_mean(d):.1f} ± {_std(d):.1f}" if d else "—"  # noqa: E731
            ci = lambda x: (f"{x['mean']:+.1f} [{x['lo']:+.1f}, {x['hi']:+.1f}] {x['wins']}/{x['n']}"  # noqa: E731
                            if x["n"] else "—")
            rows.append({"dataset": f"{ds} ({metric})", "teacher": f"{teacher:.1f}", "k": k, "KD": fmt(kd),
                         "KD(k/2)": fmt(half), "KD+CoD": fmt(cod), "CoD − KD [95% t CI] wins": ci(g),
                         "CoD − KD(k/2)": ci(gh), "CoD − KD, held-out val": ci(gv), "seeds": len(cod)})
            cfe = [r["student"] and r["cfe"] for r in res if (r["dataset"], r["augment"], r["k"]) == (ds, "cod", k)]
            cfe = [c for c in cfe if c]
            if cfe:
                avg = lambda key: _mean({i: c.get(key) for i, c in enumerate(cfe) if c.get(key) is not None})  # noqa: E731
                quality.append({"dataset": ds, "k": k, "validity": f"{avg('validity'):.2f}",
                                "edited words": f"{avg('edited_words_mean'):.2f}",
                                "fluency drop": _f(avg("fluency_drop_mean")),
                                "margin orig → CFE": f"{avg('margin_original_mean'):.2f} → {avg('margin_cfe_mean'):.2f}",
                                "unpaired originals / run": f"{avg('unpaired_originals'):.2f}",
                                "near-flip pairs / run": _f(avg("near_flips"))})
    body = ("Student test score (primary metric ×100), mean ± std over seeds; gains are paired by seed "
            "(same draw, same init): mean [95% CI, Student t, n−1 df] and seeds where CoD won. "
            "KD(k/2) at k is KD at k/2 (nested draws, fixed steps: the same run). The last gain is on the "
            "held-out validation texts that no selection saw: a choice between variants reads that one.\n\n"
            + (md_table(rows) if rows else "no results yet") + "\n\n## CFE quality (cfe=lm_search)\n\n"
            + (md_table(quality) if quality else "—") + "\n"
            + (versus_default(score, val, against) if tag and tag != against else ""))
    write("bench_cod_tasks" + (f"_{tag}" if tag else ""),
          "CoD beyond movie reviews: KD vs KD(k/2) vs KD+CoD, paired seeds" + (f" ({tag})" if tag else ""), body,
          command)


def scores(res: list[dict]) -> tuple[dict, dict]:
    """Test and held-out validation scores (×100) keyed (dataset, augment, k, seed)."""
    score, val = {}, {}
    for r in res:
        m, key = r["primary_metric"], (r["dataset"], r["augment"], r["k"], r["seed"])
        score[key] = 100 * r["student"]["test"][m]
        if m in r["student"].get("validation", {}):  # held-out validation: what a choice of default reads
            val[key] = 100 * r["student"]["validation"][m]
    return score, val


def by_seed(src: dict, dataset: str, augment: str, k: int) -> dict:
    """One cell's scores of :func:`scores`, keyed by seed (what the paired gains pair on)."""
    return {s: v for (d, a, k_, s), v in src.items() if (d, a, k_) == (dataset, augment, k)}


def versus_default(score: dict, val: dict, against: str | None = DEFAULT_TAG) -> str:
    """A variant's KD+CoD against the default's (the ``against`` sweep), paired by seed: on
    held-out validation, which decides a default, and on test, which only reports it."""
    from cod_pipeline.stats import paired_gain_by_seed

    base_score, base_val = scores(load(sweep_dir(against)))
    rows, total = [], {"val": 0.0, "test": 0.0}
    for ds, k in sorted({(d, k) for d, a, k, _ in score if a == "cod"}):
        cell = {"dataset": ds, "k": k}
        for name, mine, base in (("val", val, base_val), ("test", score, base_score)):
            g = paired_gain_by_seed(by_seed(mine, ds, "cod", k), by_seed(base, ds, "cod", k))
            cell[f"Δ {name} (wins/n)"] = f"{g['mean']:+.1f} ({g['wins']}/{g['n']})" if g["n"] else "—"
            total[name] += g["mean"] if g["n"] else 0.0
        rows.append(cell)
    rows.append({"dataset": "**sum**", "k": "", "Δ val (wins/n)": f"**{total['val']:+.1f}**",
                 "Δ test (wins/n)": f"{total['test']:+.1f}"})
    return (f"\n## Against the default's KD+CoD (`{sweep_dir(against).name}.md`), paired by seed\n\n"
            "Variant minus default, same seeds: held-out validation (500 texts no selection saw) decides; "
            "test only reports. A cell with no change in the training rows is 0 by construction.\n\n"
            + md_table(rows) + "\n")


def sweep_dir(tag: str | None) -> Path:
    return SWEEP.with_name(f"{SWEEP.name}_{tag}") if tag else SWEEP


def _mean(d: dict) -> float:
    v = list(d.values())
    return sum(v) / len(v) if v else float("nan")


def _std(d: dict) -> float:
    import statistics

    return statistics.stdev(d.values()) if len(d) > 1 else 0.0


def _f(x) -> str:
    return "—" if x is None or x != x else f"{x:.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="tweets,subjectivity,sst2_local,cola_local,rotten_tomatoes")
    ap.add_argument("--ks", default="8,16")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--cfe", default="lm_search")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--tag", default=None, help="a variant's own sweep folder and table")
    ap.add_argument("--against", default=DEFAULT_TAG, help="the default's sweep tag a variant is compared with")
    ap.add_argument("extra", nargs="*", help="more overrides for every job")
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    command = "python benchmarks/bench_cod_tasks.py " + " ".join(sys.argv[1:])
    if not args.report_only:
        for ds in args.datasets.split(","):
            run(ds, ks, args.seeds, args.cfe, args.extra, sweep_dir(args.tag))
            report(None, args.tag, command, args.against)
    report(None, args.tag, command, args.against)


if __name__ == "__main__":
    main()
