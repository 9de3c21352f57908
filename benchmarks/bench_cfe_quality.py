"""CFE quality on the first 64 originals of each dataset's seed-0 draw, `cfe=search` against
`cfe=lm_search`: validity, edited words, teacher margins, fluency drop and cost per original.

Fluency is scored the same way for both generators, by SmolLM2-135M-Instruct (the model
lm_search uses): the mean token log-probability of the original minus that of its CFE, so a
positive drop is a less fluent CFE. Seconds per original count only CFEs generated in this run
(cache hits excluded); the language model is loaded once, up front, and its load time reported on
its own (a process loads it once for every dataset and job). Also writes 10 random CFEs per dataset.

    python benchmarks/bench_cfe_quality.py [--datasets rotten_tomatoes,tweets] [--n 64]
    python benchmarks/bench_cfe_quality.py --generators search,lm_search,lm_search+cfe.lm.same_pos=true
    python benchmarks/bench_cfe_quality.py --tag beam2 --datasets subjectivity --generators lm_search+cfe.search.beam_size=2

A generator entry may carry overrides after ``+`` (an option's variant, shown as its own row).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from common import compose, md_cell, md_table, use_local_glue, write


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="rotten_tomatoes,tweets,sst2_local,cola_local,subjectivity")
    ap.add_argument("--generators", default="search,lm_search")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--tag", default=None, help="a variant's own table (results/bench_cfe_quality_<tag>.md)")
    args = ap.parse_args()
    use_local_glue()

    from cod_pipeline.counterfactuals.lm import LanguageModel
    from cod_pipeline.counterfactuals.pairing import generate_for_draw
    from cod_pipeline.pipeline import prepare
    from cod_pipeline.teacher import ensure_teacher

    lm = LanguageModel()
    t0 = time.time()
    lm.logprob(["Loaded once per process, and shared with lm_search."])  # its load is not any dataset's
    load_s = time.time() - t0
    sampled = next((g for g in args.generators.split(",") if g.split("+")[0] == "lm_search"), None)  # its CFEs shown
    rows, samples = [], []
    for ds in args.datasets.split(","):
        for gen in args.generators.split(","):
            option, *overrides = gen.split("+")
            cfg = compose([f"dataset={ds}", f"cfe={option}", *overrides, f"k={2 * args.n}", "seed=0", "augment=cod",
                           "logger=none"], f"bench_cfe_quality/{ds}/{gen.replace('=', '-')}")
            splits, sampler = prepare(cfg)
            teacher = ensure_teacher(cfg, splits)
            pairs, _, q = generate_for_draw(cfg, splits, sampler, teacher, args.n, "fill")
            recs = [r for _, r in pairs]
            drop = lm.logprob([r["original"] for r in recs]) - lm.logprob([r["cfe"] for r in recs])
            made = q["cache"].get("generated", 0)
            rows.append({"dataset": cfg.dataset.name, "generator": gen, "originals": q["n_originals"],
                         "validity": f"{q['validity']:.2f}", "edited words": f"{q['edited_words_mean']:.2f}",
                         "margin orig → CFE": f"{q['margin_original_mean']:.2f} → {q['margin_cfe_mean']:.2f}",
                         "fluency drop": f"{statistics.fmean(drop):.2f}" if len(drop) else "—",
                         "share drop > 1": f"{(drop > 1).mean():.2f}" if len(drop) else "—",
                         "s / original": f"{q['seconds'] / made:.2f}" if made else "cached"})
            if gen == sampled:
                names = splits.label_names
                for r in random.Random(0).sample(recs, min(10, len(recs))):
                    samples.append({"dataset": cfg.dataset.name, "original": md_cell(r["original"]),
                                    "CFE": md_cell(r["cfe"]),
                                    "teacher": f"{names[r['label']]} → {names[r['cfe_label']]}"})
            print(rows[-1], flush=True)
    body = ("Validity: share of the originals tried whose CFE flips the teacher within the edit gate. "
            "Fluency drop: SmolLM2 mean token log-probability, original minus CFE (valid CFEs; lower is "
            "better). The teacher is each dataset's default (minilm) teacher. Seconds per original exclude "
            f"the language model's one load per process ({load_s:.0f} s here), which the first dataset paid "
            "before this script loaded it up front.\n\n" + md_table(rows)
            + "\n\n## 10 random CFEs per dataset, of the first lm_search entry\n\n" + (md_table(samples) if samples else "—") + "\n")
    write("bench_cfe_quality" + (f"_{args.tag}" if args.tag else ""),
          f"CFE quality: {', '.join(args.generators.split(','))}, {args.n} originals per dataset", body,
          "python benchmarks/bench_cfe_quality.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
