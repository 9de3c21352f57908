"""CFE generation throughput and cost: the OpenAI-compatible backend against the local test
server with 200 ms injected latency, 64 originals with 1 and with 16 requests in flight, then
again from the cache; and the offline search generator on the embedded teacher.
Targets: ≥ 10× faster with 16 in flight than with 1; zero calls on the rerun."""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import compose, md_table, write


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--search-n", type=int, default=32)
    args = ap.parse_args()

    from cod_pipeline.counterfactuals.generate import CFEGeneration, Gate
    from cod_pipeline.counterfactuals.generators import OpenAIGenerator, SearchGenerator
    from cod_pipeline.counterfactuals.quality import summarize
    from cod_pipeline.counterfactuals.store import CFEStore
    from cod_pipeline.data import load_splits
    from cod_pipeline.teacher import ensure_teacher
    from tests.openai_server import FakeOpenAIServer

    cfg = compose(["logger=none"], "bench_cfe")
    splits = load_splits(cfg.dataset)
    teacher = ensure_teacher(cfg, splits)
    df = splits.train.iloc[: max(args.n, args.search_n)]
    ids, texts = df["id"].tolist(), df["text"].tolist()
    scorer = lambda t: teacher.probs(list(t))  # noqa: E731
    teacher.probs(texts[:8])  # warm-up

    rows = []
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAIServer(latency_s=args.latency) as srv:
        for in_flight in (1, 16, 16):
            rerun = len(rows) == 2
            store = CFEStore(Path(tmp) / ("shared.sqlite" if in_flight == 16 else "one.sqlite"))
            gen = OpenAIGenerator("sentiment", {"model": "fake", "base_url": srv.base_url, "max_in_flight": in_flight,
                                                "timeout_s": 10, "max_retries": 2})
            g = CFEGeneration(store, gen, Gate(0.4), "rotten_tomatoes", teacher.id, scorer, splits.label_names,
                              max_attempts=1, chunk_size=args.n)
            calls0 = srv.requests
            t0 = time.perf_counter()
            recs = g.records(ids[: args.n], texts[: args.n])
            wall = time.perf_counter() - t0
            q = summarize(list(recs.values()))
            rows.append({"generator": f"openai, {in_flight} in flight" + (" (rerun, cache)" if rerun else ""),
                         "CFEs": args.n, "wall s": f"{wall:.2f}", "CFEs/s": f"{args.n / wall:.1f}",
                         "HTTP calls": srv.requests - calls0, "retries": g.stats["llm_retries"],
                         "valid": q["n_valid"], "peak in flight": srv.max_concurrent if in_flight == 16 else 1})
        store = CFEStore(Path(tmp) / "search.sqlite")
        g = CFEGeneration(store, SearchGenerator("sentiment", **dict(cfg.cfe.search)), Gate(cfg.cfe.max_edit_distance),
                          "rotten_tomatoes", teacher.id, scorer, splits.label_names, max_attempts=1,
                          chunk_size=args.search_n)
        t0 = time.perf_counter()
        recs = g.records(ids[: args.search_n], texts[: args.search_n])
        wall = time.perf_counter() - t0
        q = summarize(list(recs.values()))
        rows.append({"generator": "search (offline, embedded MiniLM teacher)", "CFEs": args.search_n,
                     "wall s": f"{wall:.2f}", "CFEs/s": f"{args.search_n / wall:.2f}", "HTTP calls": 0, "retries": 0,
                     "valid": q["n_valid"], "peak in flight": "–"})
    speedup = float(rows[0]["wall s"]) / float(rows[1]["wall s"])
    body = (f"{args.n} rotten_tomatoes originals, local OpenAI-compatible test server with {args.latency * 1000:.0f} ms "
            f"per call, one attempt each; teacher scoring included in the wall time. The fake LLM swaps a fixed "
            f"list of sentiment words, so validity here says little about LLM quality.\n\n{md_table(rows)}\n\n"
            f"16 in flight vs 1: **{speedup:.1f}×** (target ≥ 10×). Rerun from cache: "
            f"**{rows[2]['HTTP calls']} calls** (target 0).\n\nSearch generator: validity "
            f"{q['validity']:.2f}, mean normalised edit distance {q['edit_distance_mean']:.3f}, "
            f"{q['edited_words_mean']:.2f} edited words, teacher margin {q['margin_original_mean']:.2f} on "
            f"originals → {q['margin_cfe_mean']:.2f} on CFEs.\n")
    write("bench_cfe", "CFE generation throughput and cost", body)


if __name__ == "__main__":
    main()
