"""Methods as weighted sums of declared loss terms (conf/method/*.yaml ``loss:``), checked against the
fixed formula they replace; result identity (``run_hash``) across the change; sweep folder names."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml

from cod_pipeline.losses import (
    CrossEntropy,
    HiddenStateMSE,
    LayerProjections,
    SoftTargetKL,
    StepOutputs,
    WeightedSum,
    build_loss,
    distillation_loss,
)
from tests.conftest import ROOT, make_cfg


def old_distillation_loss(logits, labels, teacher_logits=None, alpha=0.0, temperature=1.0, hidden_loss=None,
                          beta=0.0, ce_weight=None):
    """Verbatim copy of ``losses.distillation_loss`` before loss terms (commit 984aa79)."""
    if ce_weight is None:
        ce = F.cross_entropy(logits, labels)
    else:
        ce = (F.cross_entropy(logits, labels, reduction="none") * ce_weight).sum() / ce_weight.sum().clamp(min=1)
    out = {"ce": ce, "loss": ce}
    if teacher_logits is not None and alpha > 0:
        t = temperature
        kd = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                      reduction="batchmean", log_target=True) * t * t
        out["kd"] = kd
        out["loss"] = out["loss"] + alpha * kd
    if hidden_loss is not None and beta > 0:
        out["lwd"] = hidden_loss
        out["loss"] = out["loss"] + beta * hidden_loss
    return out


class Model:  # what bind() reads from a Classifier
    def __init__(self, width, num_layers):
        self.width, self.num_layers = width, num_layers


@pytest.mark.parametrize("method", ["finetune", "kd", "lwd"])
@pytest.mark.parametrize("ce_weight", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_method_terms_equal_the_old_formula(tmp_path, method, ce_weight, seed):
    """The terms each method YAML declares give bit-identical losses and gradients to the old formula."""
    cfg = make_cfg(tmp_path, [f"method={method}"])
    m = cfg.method
    student, teacher = Model(8, 3), Model(16, 6)
    torch.manual_seed(seed)
    loss = build_loss(m.loss, student, teacher)
    torch.manual_seed(seed)  # the old module built its projections from the same RNG state
    proj = LayerProjections(3, 8, 16) if m.beta > 0 else None
    assert set(loss.terms) == {"ce"} | ({"kd"} if m.alpha > 0 else set()) | ({"lwd"} if m.beta > 0 else set())
    assert loss.needs == ({"logits"} if m.alpha > 0 else set()) | ({"hidden"} if m.beta > 0 else set())
    layer_map = [(1, 2), (2, 4), (3, 6)]  # uniform for 3 -> 6
    assert loss.teacher_layers == ([2, 4, 6] if m.beta > 0 else [])

    g = torch.Generator().manual_seed(100 + seed)
    logits = torch.randn(6, 3, generator=g, requires_grad=True)
    labels = torch.randint(0, 3, (6,), generator=g)
    t_logits = torch.randn(6, 3, generator=g)
    hidden = [torch.randn(6, 8, generator=g, requires_grad=True) for _ in range(4)]  # embeddings + 3 layers
    t_hidden = torch.randn(6, 3, 16, generator=g)
    w = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0]) if ce_weight else None

    new = loss(StepOutputs(logits, labels, hidden, t_logits if m.alpha > 0 else None,
                           t_hidden if m.beta > 0 else None, w))
    hidden_loss = proj([hidden[i] for i, _ in layer_map], t_hidden) if proj is not None else None
    old = old_distillation_loss(logits, labels, t_logits, m.alpha, m.temperature, hidden_loss, m.beta, w)
    assert set(new) == set(old)
    for key in old:
        assert torch.equal(new[key], old[key]), key
    assert torch.equal(distillation_loss(logits, labels, t_logits, m.alpha, m.temperature, hidden_loss, m.beta,
                                         w)["loss"], old["loss"])
    grads_new = torch.autograd.grad(new["loss"], [logits, *hidden], allow_unused=True)
    grads_old = torch.autograd.grad(old["loss"], [logits, *hidden], allow_unused=True)
    for a, b in zip(grads_new, grads_old):
        assert (a is None and b is None) or torch.equal(a, b)


def test_zero_weight_terms_are_left_out():
    loss = WeightedSum({"ce": CrossEntropy(1.0), "kd": SoftTargetKL(0.0, 2.0), "lwd": HiddenStateMSE(0.0)})
    assert list(loss.terms) == ["ce"] and not loss.needs and not loss.student_hidden
    with pytest.raises(ValueError, match="no term"):
        WeightedSum({"ce": CrossEntropy(0.0)})


def test_two_hidden_terms_read_their_own_teacher_layers():
    a, b = HiddenStateMSE(1.0, [[1, 1]]), HiddenStateMSE(2.0, [[1, 2], [2, 2]])
    loss = WeightedSum({"a": a, "b": b}).bind(Model(4, 2), Model(4, 2))
    assert loss.teacher_layers == [1, 2, 2]
    hidden = [torch.randn(5, 4) for _ in range(3)]
    t_hidden = torch.randn(5, 3, 4)
    out = loss(StepOutputs(torch.randn(5, 2), torch.zeros(5, dtype=torch.long), hidden, None, t_hidden))
    assert torch.allclose(out["a"], F.mse_loss(hidden[1], t_hidden[:, 0]))
    assert torch.allclose(out["b"], (F.mse_loss(hidden[1], t_hidden[:, 1]) + F.mse_loss(hidden[2], t_hidden[:, 2])) / 2)


# Recorded with commit 984aa79 (before loss terms, coordinate sweep folders and `_target_` options):
# a change here throws away every cached student result of that config.
HASHES = {
    (): "5f25b0f80daaae0f",
    ("method=lwd",): "2414fa94524c32d4",
    ("method=finetune",): "71a12f7b331f1560",
    ("augment=cod", "augment.on_failure=fill", "cfe=search"): "139fc56a47ef0c90",  # the defaults then
    ("augment=half",): "28d607594a9c6a28",
    ("method=lwd", "method.layer_map=[[1,2],[2,4],[3,6]]"): "c9e1103f94acf8f4",
    ("method.alpha=0",): "f8cdd1fc9a6f6494",
    ("method.temperature=4",): "0685784ecaeda97e",
    ("method=lwd", "method.beta=5"): "70271d995d697c0f",
    ("model=qwen2_5", "method=lwd", "dataset=sst2"): "71d43ff53c5feee9",
    ("model=deberta_v3", "dataset=cola"): "a8399d50fb5aa094",
    ("model=tiny",): "c9c9c4dce3d5b077",
    ("model=tiny", "method=lwd", "method.teacher_forward_every_step=true"): "616501c33bfb0eb3",
    ("dataset=tweets", "method=finetune", "k=32", "seed=3"): "8d2a1dddaaa60f32",
}


@pytest.mark.parametrize("overrides", list(HASHES), ids=[" ".join(o) or "default" for o in HASHES])
def test_run_hash_is_unchanged(tmp_path, overrides):
    from cod_pipeline.pipeline import run_hash

    assert run_hash(make_cfg(tmp_path, list(overrides))) == HASHES[overrides]


def test_a_changed_term_changes_the_run_hash(tmp_path):
    from cod_pipeline.pipeline import run_hash

    base = run_hash(make_cfg(tmp_path, []))
    assert run_hash(make_cfg(tmp_path, ["method.loss.kd.temperature=3"])) != base
    assert run_hash(make_cfg(tmp_path, ["+method.loss.extra={_target_: cod_pipeline.losses.CrossEntropy}"])) != base
    assert run_hash(make_cfg(tmp_path, ["method=finetune", "method.alpha=20"])) != run_hash(
        make_cfg(tmp_path, ["method=kd", "method.temperature=1"]))  # finetune lists no KD term


COORDS = {"dataset": "${dataset.name}", "model": "${model.name}", "method": "${method.name}",
          "augment": "${augment.name}"}


@pytest.mark.parametrize("sweep", sorted(p.name for p in (ROOT / "multirun_sweeps").glob("*.yaml")))
def test_sweep_folders_name_every_swept_key(sweep):
    """Two jobs of one sweep never share a folder: each swept key is in the job folder's name."""
    hydra = yaml.safe_load((ROOT / "multirun_sweeps" / sweep).read_text())["hydra"]
    subdir = hydra["sweep"]["subdir"]
    assert "hydra.job.num" not in subdir
    for key in hydra["sweeper"]["params"]:
        assert COORDS.get(key, "${" + key + "}") in subdir, key


def test_default_sweep_folder_is_the_coordinates():
    default = yaml.safe_load((ROOT / "conf" / "hydra" / "default.yaml").read_text())["sweep"]["subdir"]
    assert default == "${dataset.name}/${model.name}/${method.name}+${augment.name}/k${k}/seed${seed}"
