"""W&B (issue #16): WANDB_MODE decides online/offline, runs grouped by config minus seed and
tagged, the config logged at the start of a run, a reused result logged too (offline, tmp WANDB_DIR)."""
import json
from pathlib import Path

import hydra
import pytest

from cod_pipeline import pipeline
from cod_pipeline.pipeline import run, run_hash


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    (tmp_path / "wandb").mkdir()
    yield
    import wandb

    wandb.finish()


def test_wandb_mode_follows_the_environment(tiny_cfg, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_ENTITY", "my-team")
    cfg = tiny_cfg("logger=wandb", "logger.wandb.project=proj")
    assert cfg.logger.wandb.mode == "online" and cfg.logger.wandb.offline is False
    lg = hydra.utils.instantiate(cfg.logger.wandb)  # no run is started: no network
    assert lg._wandb_init["mode"] == "online" and lg._offline is False
    assert lg._wandb_init["entity"] == "my-team" and lg._wandb_init["project"] == "proj"
    monkeypatch.delenv("WANDB_MODE")
    assert tiny_cfg("logger=wandb").logger.wandb.mode == "offline"  # unset: offline, as before


def test_group_drops_the_seed(tiny_cfg):
    a = tiny_cfg("logger=wandb", "k=8", "seed=1", "augment=cod").logger.wandb
    b = tiny_cfg("logger=wandb", "k=8", "seed=2", "augment=cod").logger.wandb
    assert a.group == b.group == "rotten_tomatoes/tiny/kd+cod/a20.0/search/k8"
    assert a.name != b.name
    # an ablation's alpha, or another CFE generator, is another group: never averaged together
    assert tiny_cfg("logger=wandb", "k=8", "augment=cod", "method.alpha=0").logger.wandb.group != a.group
    assert tiny_cfg("logger=wandb", "k=8", "augment=cod", "cfe=lm_search").logger.wandb.group != a.group
    assert {"dataset=rotten_tomatoes", "method=kd", "augment=cod", "k=8"} <= set(a.tags)


def test_config_logged_at_start_and_reused_result_logged(tiny_cfg, wandb_env, monkeypatch):
    cfg = tiny_cfg("logger=wandb", "k=4", "seed=3")
    seen = {}

    def crash(cfg, splits, teacher, rows, loggers=None):
        (lg,) = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
        run_ = lg.experiment
        seen.update(config=dict(run_.config), group=run_.group, tags=set(run_.tags), mode=run_.settings.mode)
        raise RuntimeError("crash in training")

    real_train = pipeline.train_student
    monkeypatch.setattr(pipeline, "train_student", crash)
    with pytest.raises(RuntimeError, match="crash in training"):
        run(cfg)
    assert seen["group"] == "rotten_tomatoes/tiny/kd+none/a20.0/search/k4"
    assert {"dataset=rotten_tomatoes", "method=kd", "augment=none", "k=4"} <= seen["tags"]
    assert seen["mode"] == "offline"
    assert seen["config"]["k"] == 4 and seen["config"]["seed"] == 3 and seen["config"]["reused"] is False
    assert seen["config"]["model"]["name"] == "tiny"
    out = Path(cfg.paths.output_dir)
    assert list(out.rglob("offline-run-*"))  # the crashed run was written, offline

    import cod_pipeline.tracking as tracking

    monkeypatch.setattr(pipeline, "train_student", real_train)  # real training, then the same config again
    first = run(cfg)
    logged = {}
    real_log_final = tracking.log_final

    def spy(loggers, cfg, result, reused=False):
        (lg,) = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
        real_log_final(loggers, cfg, result, reused)
        logged.update(reused=reused, tags=set(lg.experiment.tags), config=dict(lg.experiment.config),
                      summary=dict(lg.experiment.summary), run_hash=result["run_hash"])

    monkeypatch.setattr(tracking, "log_final", spy)
    again = run(cfg)
    assert again["run_hash"] == first["run_hash"] == run_hash(cfg)
    assert logged["reused"] is True and "reused" in logged["tags"] and logged["config"]["reused"] is True
    assert logged["summary"]["reused"] is True
    assert logged["config"]["provenance"]["versions"] == first["provenance"]["versions"]
    assert logged["summary"]["test/accuracy"] == pytest.approx(first["student"]["test"]["accuracy"])
    assert json.loads((out / "result.json").read_text())["run_hash"] == first["run_hash"]


def test_a_failed_job_is_a_failed_wandb_run(tiny_cfg, wandb_env, monkeypatch):
    """A job that exits 2 (non-finite loss) finishes its W&B run with exit code 2, not as a success."""
    import wandb

    from cod_pipeline.validation import TrainingDiverged

    codes, real_finish = [], wandb.finish
    monkeypatch.setattr(wandb, "finish", lambda exit_code=None, **kw: (codes.append(exit_code),
                                                                      real_finish(exit_code=exit_code, **kw)))
    with pytest.raises(TrainingDiverged):
        run(tiny_cfg("logger=wandb", "k=4", "method.alpha=1e39"))
    assert codes == [2]
    run(tiny_cfg("logger=wandb", "k=4"))
    assert codes == [2, 0]
