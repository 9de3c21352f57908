"""Quality on real data: GLUE SST-2 from local TSVs (../shared/data/sst2 or $SST2_DIR) with the
embedded minilm pair: teacher test accuracy (872 sentences), student accuracy and agreement
for KD and KD+CoD at k ∈ {8,16,32,64}, 5 seeds, mean ± std, CoD − KD per k."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from common import ROOT, write


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ks", default="8,16,32,64")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--model", default="minilm")
    args = ap.parse_args()
    data = Path(os.environ.get("SST2_DIR", ROOT.parent / "shared" / "data" / "sst2"))
    if not (data / "train.tsv").exists():
        sys.exit(f"error: SST-2 TSVs not found in {data} (set SST2_DIR)")
    sweep = ROOT / "logs" / f"bench_sst2_{args.model}"
    cmd = [sys.executable, "run.py", "-m", "dataset=sst2_local", f"model={args.model}", f"k={args.ks}",
           f"seed={args.seeds}", "augment=none,cod", "compare=[]", "logger=none", "trainer.enable_progress_bar=false",
           f"hydra.sweep.dir={sweep}"]
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "SST2_DIR": str(data)})
    from cod_pipeline.report import aggregate, collect, render_markdown

    df = collect([str(sweep)])
    acc = aggregate(df, "accuracy")
    agr = aggregate(df, "agreement")
    teacher = df["teacher_accuracy"].dropna().mean() if len(df) else None
    body = (f"Local SST-2 ({data}), model={args.model}; test = GLUE validation (872). Each cell: mean ± std "
            f"over seeds {args.seeds}.\n\n## Accuracy\n\n{render_markdown(acc)}\n\n## Agreement with the teacher"
            f"\n\n{render_markdown(agr)}\n")
    if teacher is not None and teacher == teacher:
        body = f"Teacher test accuracy: {100 * teacher:.1f}\n\n" + body
    write(f"bench_sst2_{args.model}" if args.model != "minilm" else "bench_sst2", "Quality on SST-2", body)


if __name__ == "__main__":
    main()
