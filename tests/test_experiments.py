"""Smoke-run every experiment file on tiny settings (glob: a new file is covered automatically)."""
from pathlib import Path

import pytest

from cod_pipeline.pipeline import run
from tests.conftest import CONF

EXPERIMENTS = sorted(p.stem for p in (Path(CONF) / "experiment").glob("*.yaml"))
SMALL = {  # shrink each experiment to seconds; anything not listed runs on the tiny text models
    "moons": ["mechanism.params.ks=[8]", "mechanism.params.seeds=1", "mechanism.params.alpha_sweep=[0.05]",
              "mechanism.params.flip_rates=[0.0]", "+mechanism.params.steps=30", "+mechanism.params.teacher_steps=60",
              "+mechanism.params.resolution=40", "+mechanism.params.n_test=200", "+mechanism.params.progress=false"],
    "fisher": ["mechanism.params.ks=[8,16]", "mechanism.params.dims=[2]", "mechanism.params.seeds=3",
               "+mechanism.params.progress=false"],
    "proximity": ["k=8"],
}


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_runs(name, sentiment_cfg):
    cfg = sentiment_cfg(f"experiment={name}", *SMALL.get(name, ["k=8"]))
    run(cfg)
    out = Path(cfg.paths.output_dir)
    written = {p.suffix for p in out.iterdir()}
    assert ".json" in written
    if cfg.stage in ("moons", "fisher", "proximity"):
        assert {".md", ".png", ".csv"} <= written
