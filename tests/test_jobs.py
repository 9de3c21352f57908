"""Compare arms are composed by Hydra: a user's own config dir (``--config-dir``) and an option's
defaults list reach them; a missing option fails with one line."""
from __future__ import annotations

import shutil

import pytest
from hydra import initialize_config_dir

from cod_pipeline import ConfigError
from cod_pipeline.jobs import with_augment
from tests.conftest import CONF, make_cfg


def test_compare_arm_uses_the_apps_config_dir_and_defaults_list(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "augment" / "mine.yaml").write_text("defaults:\n  - cod\n  - _self_\nname: mine\non_failure: fill\n")
    cfg = make_cfg(tmp_path, ["compare=[]"])
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        sub = with_augment(cfg, "mine", tmp_path / "arm")
    assert sub.augment.name == "mine" and sub.augment.on_failure == "fill"
    assert sub.augment.paired and sub.augment.cfe_loss == "ce_kl"  # from cod.yaml, via the defaults list
    assert sub.compare == [] and sub.paths.output_dir == str(tmp_path / "arm") and cfg.augment.name == "none"


def test_compare_arm_outside_an_app_reads_the_package_conf(tmp_path):
    sub = with_augment(make_cfg(tmp_path), "half", tmp_path / "arm")
    assert sub.augment.name == "half" and sub.augment.fraction == 0.5
    with pytest.raises(ConfigError, match="^compare: no augment option 'nope' \\(see conf/augment/\\)$"):
        with_augment(make_cfg(tmp_path), "nope", tmp_path / "arm")


def test_validate_reads_a_compare_arm_from_the_apps_config_dir(tmp_path):
    from cod_pipeline.validation import validate

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / "augment" / "mine.yaml").write_text("defaults:\n  - half\n  - _self_\nname: mine\nfraction: 0.1\n")
    cfg = make_cfg(tmp_path, ["compare=[mine]", "k=8"])
    with pytest.raises(ConfigError, match="no augment option 'mine'"):
        validate(cfg)  # outside the app: the package's conf/, which has no such option
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(ConfigError, match=r"augment=mine \(compare\)"):
            validate(cfg)  # composed from the user's conf: its 10% of k=8 leaves no original per class
