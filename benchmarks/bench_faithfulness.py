"""Faithfulness of CFE sets: does an independent reader give each CFE the class the teacher does?

For the first ``--n`` originals of each dataset's seed-0 draw, each generator's CFEs are read by
two judges trained on gold labels of the training split: the all-mpnet-base-v2 probe (another
family than the teacher, lm_search and lm_reader's n-gram reader: the figure that compares
generators) and the word/char n-gram logistic regression (the issue's reader; of the same family
as lm_reader's own reader, so for lm_reader it is not independent and shown in brackets).
Also: validity, edited words, fluency drop, seconds per generated original, and 10 random CFEs
per dataset of the last generator with the mpnet judge's label.

    python benchmarks/bench_faithfulness.py [--datasets rotten_tomatoes,tweets] [--n 30]
"""
from __future__ import annotations

import argparse
import math
import random
import time

from common import compose, md_cell, md_table, use_local_glue, write

DATASETS = "rotten_tomatoes,sst2_local,tweets,tweets3,subjectivity,cola_local,convention"


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's exact test on the discordant originals)."""
    n = wins + losses
    if not n:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _f(x, fmt="{:.2f}"):
    return "—" if x is None else fmt.format(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=DATASETS)
    ap.add_argument("--generators", default="lm_search,lm_reader")
    ap.add_argument("--n", type=int, default=30, help="originals per dataset (a multiple of every class count)")
    ap.add_argument("--tag", default=None)
    args = ap.parse_args()
    use_local_glue()

    from cod_pipeline.counterfactuals.pairing import generate_for_draw
    from cod_pipeline.judge import ensure_judge, faithfulness
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    gens = args.generators.split(",")
    rows, samples = [], []
    pooled = {g: [0, 0] for g in gens[1:]}
    for ds in args.datasets.split(","):
        judges = {}
        for gen in gens:
            option, *overrides = gen.split("+")
            cfg = compose([f"dataset={ds}", f"cfe={option}", *overrides, f"k={2 * args.n}", "seed=0", "augment=cod",
                           "logger=none"], f"bench_faithfulness/{ds}/{gen.replace('=', '-')}")
            splits, sampler = prepare(cfg)
            teacher = ensure_teacher(cfg, splits)
            for name in ("mpnet", "ngram"):
                if name not in judges:
                    jcfg = compose([f"dataset={ds}", f"judge={name}"], "bench_faithfulness/judge")
                    t0 = time.time()
                    judges[name] = (*ensure_judge(jcfg, splits), time.time() - t0)
            t0 = time.time()
            _, _, q = generate_for_draw(cfg, splits, sampler, teacher, args.n, "fill")
            seconds = time.time() - t0
            recs = q.pop("records")
            valid = [r for r in recs if r.get("valid")]
            made = q["cache"].get("generated", 0)
            own = set(q.get("reader_families") or ())
            judged_all = {name: [dict(r) for r in recs] for name in judges}
            f = {name: faithfulness(j, judged_all[name]) for name, (j, _, _) in judges.items()}
            good = {r["sample_id"]: bool(r.get("valid") and r.get("judge_label") == r.get("cfe_label"))
                    for r in judged_all["mpnet"]}  # per original: a valid CFE the mpnet judge reads as its class
            ng = _f(f["ngram"]["faithfulness"])
            rows.append({"dataset": cfg.dataset.name, "generator": gen, "originals": len(recs),
                         "validity": _f(q["validity"]),
                         "faithful (mpnet judge)": _f(f["mpnet"]["faithfulness"]),
                         "faithful (n-gram judge)": f"({ng})" if judges["ngram"][1]["family"] in own else ng,
                         "valid and faithful": _f(q["validity"] * f["mpnet"]["faithfulness"]
                                                  if valid and f["mpnet"]["faithfulness"] is not None else None),
                         "edited words": _f(q["edited_words_mean"]), "fluency drop": _f(q["fluency_drop_mean"]),
                         "s / original": f"{seconds / made:.2f}" if made else "cached"})
            if gen == gens[0]:
                first = good
                rows[-1]["vs first: better / worse (p)"] = "—"
            else:  # paired on the same originals: where only this one / only the first gives a faithful CFE
                wins = sum(good[k] and not first.get(k, False) for k in good)
                losses = sum(first.get(k, False) and not good[k] for k in good)
                pooled[gen][0] += wins
                pooled[gen][1] += losses
                rows[-1]["vs first: better / worse (p)"] = f"{wins} / {losses} ({sign_test(wins, losses):.2f})"
            print(rows[-1], flush=True)
            if gen == gens[-1]:
                judged = [dict(r) for r in valid]
                faithfulness(judges["mpnet"][0], judged)
                names = splits.label_names
                for r in random.Random(0).sample(judged, min(10, len(judged))):
                    samples.append({"dataset": cfg.dataset.name, "original": md_cell(r["original"], 140),
                                    "CFE": md_cell(r["cfe"], 140), "teacher": f"{names[r['label']]} → {names[r['cfe_label']]}",
                                    "mpnet judge": names[r["judge_label"]]})
        for name, (_, meta, secs) in judges.items():
            print(f"{ds}: judge {meta['family']} test accuracy {meta['test']['accuracy']:.3f} "
                  f"({meta['train_size']} train texts, {secs:.0f} s)", flush=True)
        rows[-1]["judges' test accuracy"] = " / ".join(f"{m['test']['accuracy']:.2f}" for _, m, _ in judges.values())
        for r in rows:
            r.setdefault("judges' test accuracy", "")
    body = ("Faithfulness: the share of valid CFEs (they flip the teacher within the edit gate) that the judge "
            "gives the teacher's class on the CFE. Judges trained on gold labels: the all-mpnet-base-v2 probe "
            "(2,000 training texts) and the n-gram logistic regression (up to 20,000); their test accuracy is the "
            "last column (mpnet / n-gram). An n-gram figure in brackets is of the generator's own reader's family, "
            "so not independent. Seconds per original include, for lm_reader, its reader's one fit and, on a "
            "teacher's first use, the teacher's scoring of the 4,000 pool texts. `vs first`: on the same "
            "originals, how many get a valid CFE the mpnet judge reads as its class from this generator and not "
            f"from {gens[0]} (better), and the reverse (worse), with the exact sign test's p.\n\n" + md_table(rows)
            + "\n\nPooled over the datasets, vs " + gens[0] + ": "
            + "; ".join(f"{g}: {w} better / {lo} worse (p={sign_test(w, lo):.2f})" for g, (w, lo) in pooled.items())
            + f"\n\n## 10 random valid CFEs per dataset, {gens[-1]}, with the mpnet judge's class\n\n"
            + (md_table(samples) if samples else "—") + "\n")
    name = "bench_faithfulness" + (f"_{args.tag}" if args.tag else "")
    write(name, "CFE faithfulness: an independent judge reads each generator's CFEs", body,
          f"python benchmarks/bench_faithfulness.py --n {args.n}")


if __name__ == "__main__":
    main()
