"""How close is each validation and test text to its nearest training-pool text? A validation split
carved from a training file full of near-copies (SST-2's sub-phrases of the same parse trees, CoLA's
minimal pairs) measures the training pool's neighbourhood, not the test set: its scores, and any
choice made on it, need not carry over to test.

Similarity: Jaccard of word unigram+bigram sets, lower-cased; the nearest pool text per query.

    python benchmarks/bench_split_overlap.py [--datasets rotten_tomatoes,tweets] [overrides…]
    python benchmarks/bench_split_overlap.py --datasets local dataset.source.path=data/train.tsv
"""
from __future__ import annotations

import argparse
import os

import numpy as np
from common import ROOT, compose, md_table, write

SHARED = ROOT.parent / "shared" / "data"


def grams(text: str) -> set[str]:
    w = text.lower().split()
    return set(w) | {a + " " + b for a, b in zip(w, w[1:])}


def nearest_jaccard(queries: list[str], pool: list[str], chunk: int = 256) -> np.ndarray:
    """Each query's largest Jaccard similarity to any pool text (sparse, in query chunks)."""
    import scipy.sparse as sp

    vocab: dict[str, int] = {}

    def matrix(texts, grow):
        rows, cols, sizes = [], [], []
        for r, t in enumerate(texts):
            g = grams(t)
            sizes.append(len(g))
            for x in g:
                j = vocab.setdefault(x, len(vocab)) if grow else vocab.get(x)
                if j is not None:
                    rows.append(r)
                    cols.append(j)
        return rows, cols, np.asarray(sizes, dtype=np.float64)

    r, c, psize = matrix(pool, True)
    P = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(pool), len(vocab))).T.tocsr()
    r, c, qsize = matrix(queries, False)
    Q = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(queries), len(vocab)))
    best = np.zeros(len(queries))
    for s in range(0, len(queries), chunk):
        inter = (Q[s:s + chunk] @ P).tocoo()  # shared grams, only where some are shared
        jac = inter.data / (qsize[s + inter.row] + psize[inter.col] - inter.data)
        np.maximum.at(best, s + inter.row, jac)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="rotten_tomatoes,tweets,subjectivity,sst2_local,cola_local")
    ap.add_argument("extra", nargs="*", help="more overrides (dataset=local's path, …)")
    args = ap.parse_args()
    os.environ.setdefault("SST2_DIR", str(SHARED / "sst2"))
    os.environ.setdefault("COLA_DIR", str(SHARED / "cola"))
    from cod_pipeline.pipeline import prepare

    rows = []
    for ds in args.datasets.split(","):
        splits, _ = prepare(compose([f"dataset={ds}", "logger=none", *args.extra], f"bench_split_overlap/{ds}"))
        pool = splits.train["text"].astype(str).tolist()
        for name, df in (("validation", splits.validation), ("test", splits.test)):
            best = nearest_jaccard(df["text"].astype(str).tolist(), pool)
            rows.append({"dataset": ds, "split": name, "texts": len(best), "pool": len(pool),
                         "nearest Jaccard, mean": f"{best.mean():.2f}",
                         "share ≥ 0.5": f"{(best >= 0.5).mean():.2f}", "share ≥ 0.7": f"{(best >= 0.7).mean():.2f}"})
    write("bench_split_overlap", "Near-copies of the training pool in the validation and test splits",
          "Each text's nearest training-pool text by Jaccard similarity of word unigram+bigram sets. Where "
          "validation has many near-copies and test few, validation reads the pool's neighbourhood.\n\n"
          + md_table(rows))


if __name__ == "__main__":
    main()
