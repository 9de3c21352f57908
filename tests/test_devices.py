"""Inference runs where the trainer config says, never on whatever the machine happens to have."""
import pytest
import torch
from omegaconf import OmegaConf

from cod_pipeline.models.backbone import load_classifier, predict
from cod_pipeline.training import job_device


@pytest.mark.parametrize("accelerator, expected", [("cpu", "cpu"), ("gpu", "cuda"), ("cuda", "cuda"), ("mps", "mps"),
                                                   ("auto", "cuda" if torch.cuda.is_available() else "cpu")])
def test_job_device_follows_the_trainer(accelerator, expected):
    assert job_device(OmegaConf.create({"accelerator": accelerator})).type == expected


@pytest.fixture
def tiny_classifier(tiny_cfg):
    cfg = tiny_cfg()
    return load_classifier(2, None, tiny=cfg.model.student.tiny, cache_dir=cfg.paths.cache_dir)


def test_predict_stays_where_the_model_is_unless_told(tiny_classifier):
    logits, _ = predict(tiny_classifier, ["a fine film", "a dull one"], batch_size=1)
    assert logits.shape == (2, tiny_classifier.num_labels)
    assert next(tiny_classifier.parameters()).device.type == "cpu"
    again, _ = predict(tiny_classifier, ["a dull one", "a fine film"], device="cpu")
    assert torch.allclose(again.flip(0), logits, atol=1e-5)  # input order kept, batch size irrelevant
