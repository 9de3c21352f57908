"""What limits CoD: KD(k), KD(k/2), CoD with lm_search and with lm_reader, the retrieved-partners
control and the practitioner's budget (all k originals, each with its CFE), paired by seed.

Each (dataset, seed) is two jobs of ``run.py``: KD with ``compare=[half, cod, cod_full, retrieved]``
under ``cfe=lm_reader``, and CoD under ``cfe=lm_search``. Scores are the dataset's primary metric
on test (reported) and on the held-out validation sentences (what a choice reads); every arm is
compared with KD(k) by seed: mean [95% t CI] (seeds won), with each arm's CFE faithfulness.

    python benchmarks/bench_controls.py --datasets rotten_tomatoes,subjectivity --ks 16 --seeds 0,1,2
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict

from common import ROOT, md_table, use_local_glue, write

ARMS = ["kd+none", "kd+half", "kd+cod (lm_search)", "kd+cod (lm_reader)", "kd+retrieved", "kd+cod_full (lm_reader)"]


def _jobs(ds, k, seed, out):
    base = [f"dataset={ds}", f"k={k}", f"seed={seed}", "logger=none", "trainer.enable_progress_bar=false", "judge=mpnet"]
    return [(base + ["cfe=lm_reader", "augment=none", "compare=[half,cod,cod_full,retrieved]",
                     f"hydra.run.dir={out}/{ds}/k{k}/s{seed}/reader"], "reader"),
            (base + ["cfe=lm_search", "augment=cod", "compare=[]", f"hydra.run.dir={out}/{ds}/k{k}/s{seed}/search"],
             "search")]


def _arms(folder, which: str) -> dict:
    """Every arm's result in a job's folder: the main one, and each compare arm's own folder."""
    result = json.loads((folder / "result.json").read_text())
    out = {}
    entries = [(f"{result['method']}+{result['augment']}", result)] + [
        (f"{result['method']}+{p.name}", json.loads((p / "result.json").read_text()))
        for p in sorted((folder / "compare").glob("*")) if (p / "result.json").exists()]
    for name, r in entries:
        label = {"kd+cod": f"kd+cod ({'lm_reader' if which == 'reader' else 'lm_search'})",
                 "kd+cod_full": "kd+cod_full (lm_reader)"}.get(name, name)
        metric = r["primary_metric"]
        out[label] = {"test": r["student"]["test"][metric] * 100,
                      "val": (r["student"].get("validation") or {}).get(metric, float("nan")) * 100,
                      "faith": (r.get("cfe") or {}).get("faithfulness"), "validity": (r.get("cfe") or {}).get("validity")}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="rotten_tomatoes,subjectivity")
    ap.add_argument("--ks", default="16")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()
    use_local_glue()
    from cod_pipeline.stats import paired_gain

    out = ROOT / "logs" / "bench_controls"
    scores = defaultdict(dict)  # (ds, k, arm) -> seed -> figures
    for ds in args.datasets.split(","):
        for k in map(int, args.ks.split(",")):
            for seed in map(int, args.seeds.split(",")):
                for overrides, which in _jobs(ds, k, seed, out):
                    print(f"[bench_controls] {ds} k={k} seed={seed} {which}", flush=True)
                    subprocess.run([sys.executable, "run.py", *overrides], cwd=ROOT, check=True,
                                   stdout=subprocess.DEVNULL)
                    for arm, fig in _arms(out / ds / f"k{k}" / f"s{seed}" / which, which).items():
                        scores[(ds, k, arm)][seed] = fig
    rows = []
    for ds in args.datasets.split(","):
        for k in map(int, args.ks.split(",")):
            kd = scores[(ds, k, "kd+none")]
            seeds = sorted(kd)
            for arm in ARMS:
                cell = scores.get((ds, k, arm)) or {}
                if not cell:
                    continue
                row = {"dataset": ds, "k": k, "arm": arm,
                       "test": f"{sum(cell[s]['test'] for s in seeds) / len(seeds):.1f}"}
                for split in ("test", "val"):
                    if arm == "kd+none":
                        row[f"− KD, {split}"] = "—"
                        continue
                    g = paired_gain([cell[s][split] for s in seeds], [kd[s][split] for s in seeds])
                    row[f"− KD, {split}"] = f"{g['mean']:+.1f} [{g['lo']:+.1f}, {g['hi']:+.1f}] {g['wins']}/{g['n']}"
                faith = [cell[s]["faith"] for s in seeds if cell[s]["faith"] is not None]
                valid = [cell[s]["validity"] for s in seeds if cell[s]["validity"] is not None]
                row["faithfulness"] = f"{sum(faith) / len(faith):.2f}" if faith else "—"
                row["validity"] = f"{sum(valid) / len(valid):.2f}" if valid else "—"
                rows.append(row)
    body = ("Paired by seed against KD(k) on the same draw: mean difference [95% t CI] and seeds won, on test "
            "(reported) and on held-out validation (decides). Faithfulness: the mpnet-probe judge (another family "
            "than every generator here) gives the partner the teacher's class. "
            f"Seeds {args.seeds}.\n\n" + md_table(rows))
    write("bench_controls" + (f"_{args.tag}" if args.tag else ""), "What limits CoD: controls beside KD and CoD", body,
          f"python benchmarks/bench_controls.py --datasets {args.datasets} --ks {args.ks} --seeds {args.seeds}")


if __name__ == "__main__":
    main()
