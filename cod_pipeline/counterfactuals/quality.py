"""CFE quality, saved with every run: validity (with rejection reasons), minimality,
boundary proximity (teacher margin on originals vs CFEs) and LLM cost."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from cod_pipeline.counterfactuals.textclean import diff_markdown


def margin(probs) -> float:
    """Top-1 minus top-2 probability: 0 at the decision boundary."""
    p = np.sort(np.asarray(probs, dtype=float))
    return float(p[-1] - p[-2])


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def summarize(records: list[dict], seconds: float | None = None) -> dict:
    valid = [r for r in records if r.get("valid")]
    reasons = Counter()
    for r in records:
        reasons.update(r.get("rejections") or {})
    out = {
        "n_originals": len(records),
        "n_valid": len(valid),
        "validity": len(valid) / len(records) if records else None,
        "rejections": dict(reasons),
        "failed_final_reasons": dict(Counter(r.get("reason") for r in records if not r.get("valid"))),
        "edit_distance_mean": _mean([r.get("edit_distance") for r in valid]),
        "edited_words_mean": _mean([r.get("n_edits") for r in valid]),
        "margin_original_mean": _mean([margin(r["orig_probs"]) for r in records]),
        "margin_cfe_mean": _mean([margin(r["cfe_probs"]) for r in valid]),
        "confidence_original_mean": _mean([max(r["orig_probs"]) for r in records]),
        "confidence_cfe_mean": _mean([max(r["cfe_probs"]) for r in valid]),
        "llm_calls": int(sum(r.get("calls", 0) for r in records)),  # what these CFEs cost when generated
        "llm_retries": int(sum(r.get("retries", 0) for r in records)),
        "llm_prompt_tokens": int(sum((r.get("tokens") or [0, 0])[0] for r in records)),
        "llm_completion_tokens": int(sum((r.get("tokens") or [0, 0])[1] for r in records)),
        "rejected_outputs": int(sum(reasons.values())),
        "attempts_mean": _mean([r.get("attempts") for r in records]),
    }
    # fluency: the language model's mean token log-probability, original minus CFE (lm_search)
    drops = [r["lm_logprob_original"] - r["lm_logprob"] for r in valid
             if r.get("lm_logprob") is not None and r.get("lm_logprob_original") is not None]
    out["fluency_drop_mean"] = _mean(drops)
    out["fluency_drop_share_over_1"] = float(np.mean([d > 1.0 for d in drops])) if drops else None
    if seconds is not None:
        out["seconds"] = seconds
    return out


def sample_rows(records: list[dict], n: int = 10) -> list[dict]:
    """The first ``n`` valid records as a result carries them: texts and teacher probabilities."""
    return [{k: r[k] for k in ("original", "cfe", "orig_probs", "cfe_probs")} for r in records[:n]]


def write_samples(records: list[dict], path: Path, label_names: list[str], n: int = 25) -> Path:
    """A readable sample: original, CFE with edited words marked, teacher probabilities, and the
    judge's class on the CFE once a judge has read them (``judge_label``)."""
    fmt = lambda p: ", ".join(f"{name} {q:.2f}" for name, q in zip(label_names, p))  # noqa: E731
    judged = any("judge_label" in r for r in records)
    head = "| # | original (teacher) | CFE, edits in **bold** (teacher) |" + (" judge |" if judged else "")
    lines = [head, "|---|---|---|" + ("---|" if judged else "")]
    for i, r in enumerate(records[:n], 1):
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        cfe = (f"{esc(diff_markdown(r['original'], r['cfe']))} ({fmt(r['cfe_probs'])})" if r.get("valid")
               else f"*no valid CFE: {r.get('reason')}*")
        row = f"| {i} | {esc(r['original'])} ({fmt(r['orig_probs'])}) | {cfe} |"
        if judged:
            j = r.get("judge_label")
            row += (f" {label_names[j]} ({'agrees' if j == r.get('cfe_label') else 'disagrees'}) |"
                    if j is not None else " |")
        lines.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Counterfactual samples\n\n" + "\n".join(lines) + "\n")
    return path
