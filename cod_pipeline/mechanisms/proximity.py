"""Boundary proximity on text: the teacher's margin on originals, on search CFEs, on LLM CFEs
found in the cache, and on random edits of the same size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def margins(probs: np.ndarray) -> np.ndarray:
    p = np.sort(np.asarray(probs), axis=-1)
    return p[:, -1] - p[:, -2]


def proximity_table(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = []
    for name, m in groups.items():
        if len(m):
            rows.append({"set": name, "n": len(m), "margin_mean": float(np.mean(m)), "margin_std": float(np.std(m)),
                         "margin_median": float(np.median(m)), "share_within_0.2": float(np.mean(m < 0.2))})
    return pd.DataFrame(rows)


def write_proximity(groups: dict[str, np.ndarray], out_dir: Path) -> pd.DataFrame:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    table = proximity_table(groups)
    table.to_csv(out_dir / "proximity.csv", index=False)
    lines = ["| set | n | margin mean ± std | median | share < 0.2 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r.set} | {r.n} | {r.margin_mean:.3f} ± {r.margin_std:.3f} | {r.margin_median:.3f} | "
              f"{r._6:.2f} |" for r in table.itertuples()]
    (out_dir / "proximity.md").write_text("Teacher margin (top-1 − top-2 probability; 0 = on the boundary)\n\n"
                                          + "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 21)
    for name, m in groups.items():
        if len(m):
            ax.hist(m, bins=bins, alpha=0.5, label=f"{name} (n={len(m)})", density=True)
    ax.set_xlabel("teacher margin |p₁ − p₂|")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "proximity.png", dpi=120)
    plt.close(fig)
    return table
