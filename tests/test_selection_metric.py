"""Checkpoints are selected on the dataset's primary metric, and a dataset may ask its teacher
for more training (``dataset.teacher_training``), as part of the teacher's identity."""
from __future__ import annotations

import pytest

from cod_pipeline.evaluation import selection_score
from cod_pipeline.teacher import teacher_key, teacher_training
from tests.conftest import make_cfg


def test_mcc_selection_does_not_reward_the_majority_class():
    target = [1] * 7 + [0] * 3
    majority, informed = [1] * 10, [1] * 5 + [0, 0] + [0, 0, 1]  # the second finds 2 of the 3 minority rows
    assert selection_score(majority, target, 2) == pytest.approx(0.7)
    assert selection_score(informed, target, 2) == pytest.approx(0.7)  # accuracy cannot tell them apart
    assert selection_score(majority, target, 2, "mcc") == 0.0
    assert selection_score(informed, target, 2, "mcc") > 0.3


def test_dataset_teacher_training_overrides_the_models_and_changes_the_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_DIR", str(tmp_path))
    plain = make_cfg(tmp_path, ["dataset=cola_local", "dataset.teacher_training.epochs=1"])
    more = make_cfg(tmp_path, ["dataset=cola_local"])  # cola asks for 3 epochs
    assert teacher_training(more).epochs == 3 and teacher_training(plain).epochs == 1
    assert teacher_training(more).train_cap is None  # cola trains on its whole train set
    assert teacher_training(more).lr == more.model.teacher_training.lr  # the rest is the model's
    assert teacher_key(more) != teacher_key(plain)
    # an override equal to the model's own setting is no change: deberta_v3 already trains 3 epochs
    hub = make_cfg(tmp_path, ["model=deberta_v3", "dataset=cola"])
    same = make_cfg(tmp_path, ["model=deberta_v3", "dataset=cola", "~dataset.teacher_training"])
    assert teacher_key(hub) == teacher_key(same)
