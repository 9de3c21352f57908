"""Every option of every config group, and every experiment file, composes."""
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF, make_cfg

GROUPS = [p for p in sorted(Path(CONF).iterdir()) if p.is_dir() and p.name not in ("hydra",)]
OPTIONS = [(g.name, f.stem) for g in GROUPS for f in sorted(g.glob("*.yaml"))]


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(tmp_path, group, option):
    cfg = make_cfg(tmp_path, [f"{group}={option}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)  # raises on an interpolation that does not resolve
    node = resolved.get(group.split("/")[0])
    if isinstance(node, dict) and group in ("dataset", "model", "method", "augment", "cfe", "judge") \
            and not option.startswith("_"):  # _gate_: a partial the options extend
        assert node.get("name"), f"{group}={option} names itself (results, folders and W&B groups use it)"


def test_default_is_the_embedded_job(tmp_path):
    cfg = make_cfg(tmp_path)
    assert (cfg.dataset.name, cfg.model.name, cfg.method.name, cfg.augment.name, cfg.k, cfg.seed) == (
        "rotten_tomatoes", "minilm", "kd", "none", 16, 0)
    assert cfg.method.alpha == 20.0 and cfg.method.temperature == 2.0


def test_paper_pairs_follow_official_defaults(tmp_path):
    for model in ("deberta_v3", "qwen2_5"):
        st = make_cfg(tmp_path, [f"model={model}"]).model.student_training
        assert (st.lr, st.batch_size, st.epochs) == (6e-5, 8, 100)
    assert make_cfg(tmp_path, ["method=lwd"]).method.beta == 20.0


@pytest.mark.parametrize("launcher", ["basic", "local_parallel", "slurm"])
def test_launchers_compose(launcher):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("config", [f"hydra/launcher={launcher}"], return_hydra_config=True)
    target = cfg.hydra.launcher._target_
    assert {"basic": "BasicLauncher", "local_parallel": "JoblibLauncher", "slurm": "SlurmLauncher"}[launcher] in target
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1 and "timeout_min" in cfg.hydra.launcher


@pytest.mark.parametrize("sweep", sorted(p.stem for p in (Path(CONF).parent / "multirun_sweeps").glob("*.yaml")))
def test_sweep_files_compose(sweep):
    """Each table's sweep file composes as `run.py -m --config-dir multirun_sweeps --config-name X` sees it."""
    import subprocess
    import sys

    import yaml

    proc = subprocess.run([sys.executable, "run.py", "--config-dir", "multirun_sweeps", "--config-name", sweep,
                           "--cfg", "hydra", "--package", "hydra.sweeper"], cwd=Path(CONF).parent,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    params = yaml.safe_load(proc.stdout)["params"]
    assert {"k", "seed"} <= set(params)


def test_every_stage_has_a_task_and_a_record():
    """``stage=`` options are stages.STAGES records (what the checks read) and pipeline.TASKS
    functions (what runs): one without the other would pass validation and fail to run, or run
    unchecked."""
    from cod_pipeline.pipeline import TASKS
    from cod_pipeline.stages import STAGES
    from cod_pipeline.validation import RULES

    assert set(TASKS) == set(STAGES) == set(RULES["stage"].choices)
