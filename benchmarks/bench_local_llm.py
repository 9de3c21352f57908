"""Small-LLM CFEs against the embedded teacher: SmolLM2-135M (llama.cpp server, few-shot
completion prompt) with one attempt, with the teacher-feedback loop, and as `hybrid`
(proposals repaired by the search), next to the offline search. Needs `make local-llm`.

Reports validity under the strict minimality gate, why proposals were rejected, the edit
size of valid CFEs, the teacher's margin, and wall time. Also the first proposal's edit
distance before any gate, which shows whether the LLM edits or rewrites."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import compose, md_table, write


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-edit-distance", type=float, default=None, help="default: the cfe config's gate")
    args = ap.parse_args()

    from cod_pipeline.counterfactuals.textclean import normalized_edit_distance
    from cod_pipeline.counterfactuals.generate import CFEGeneration, Gate
    from cod_pipeline.counterfactuals.generators import build_generator
    from cod_pipeline.counterfactuals.quality import summarize, write_samples
    from cod_pipeline.counterfactuals.store import CFEStore
    from cod_pipeline.data import load_splits
    from cod_pipeline.teacher import ensure_teacher

    base = compose(["logger=none", "cfe=local_llm"], "bench_local_llm")
    splits = load_splits(base.dataset)
    teacher = ensure_teacher(base, splits)
    df = splits.train.iloc[: args.n]
    ids, texts = df["id"].tolist(), df["text"].tolist()
    scorer = lambda t: teacher.probs(list(t))  # noqa: E731
    variants = [("search (offline)", "search", 1), ("SmolLM2, 1 attempt", "local_llm", 1),
                ("SmolLM2, feedback loop (3 attempts)", "local_llm", 3), ("hybrid: SmolLM2 + search repair", "hybrid", 1),
                ("Gemma-3-270M (base), feedback loop (3 attempts)", "local_gemma", 3)]
    rows, out_dir = [], Path(__file__).parent / "results"
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfe, attempts in variants:
            gate_override = [f"cfe.max_edit_distance={args.max_edit_distance}"] if args.max_edit_distance else []
            cfg = compose(["logger=none", f"cfe={cfe}", *gate_override], "bench_local_llm")
            gate = Gate(cfg.cfe.max_edit_distance, min_margin=cfg.cfe.min_margin)
            gen = build_generator(cfg.cfe, "sentiment")
            store = CFEStore(Path(tmp) / f"{len(rows)}.sqlite")
            t0 = time.perf_counter()
            with gen.session():
                g = CFEGeneration(store, gen, gate, "rotten_tomatoes", teacher.id, scorer, splits.label_names,
                                  max_attempts=attempts, chunk_size=args.n)
                recs = list(g.records(ids, texts).values())
            wall = time.perf_counter() - t0
            q = summarize(recs)
            first = [normalized_edit_distance(r["original"], r["first_candidate"]) for r in recs
                     if r.get("first_candidate")]
            rows.append({"generator": name, "originals": args.n, "valid": f"{q['n_valid']} ({q['validity']:.0%})",
                         "rejections": ", ".join(f"{k} {v}" for k, v in sorted(q["rejections"].items())) or "–",
                         "edit dist. (valid)": _f(q["edit_distance_mean"], 3),
                         "edited words": _f(q["edited_words_mean"], 2),
                         "1st proposal edit dist.": _f(np.mean(first) if first else None, 2),
                         "margin orig → CFE": f"{q['margin_original_mean']:.2f} → {_f(q['margin_cfe_mean'], 2)}",
                         "LLM calls": q["llm_calls"], "s / original": f"{wall / args.n:.2f}"})
            if cfe == "hybrid":
                write_samples(recs, out_dir / "bench_local_llm_samples.md", splits.label_names, n=16)
    body = (f"{args.n} rotten_tomatoes training originals, embedded MiniLM teacher ({teacher.id}), minimality gate "
            f"max normalised word edit distance {args.max_edit_distance or base.cfe.max_edit_distance}. SmolLM2-135M-"
            f"Instruct Q4_1 is served by llama-cpp-python on 127.0.0.1 with a 3-pair few-shot completion prompt at "
            f"temperature 0. Hybrid samples: `bench_local_llm_samples.md`.\n\n{md_table(rows)}\n")
    write("bench_local_llm", "Small local LLM CFEs: feedback loop and hybrid repair", body)


def _f(x, nd):
    return "–" if x is None else f"{x:.{nd}f}"


if __name__ == "__main__":
    main()
