import math

import torch

from cod_pipeline.evaluation import metrics
from cod_pipeline.losses import LayerProjections, distillation_loss, kd_loss, uniform_layer_map


def test_kd_loss_matches_hand_computation():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 2.0]])
    T = 2.0
    ps = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]
    pt = [1 / (1 + math.e), math.e / (1 + math.e)]
    kl = sum(p * math.log(p / q) for p, q in zip(pt, ps))
    assert math.isclose(kd_loss(s, t, T).item(), T * T * kl, rel_tol=1e-5)
    assert kd_loss(t, t, T).item() < 1e-6


def test_total_loss_is_ce_plus_alpha_kd():
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    out = distillation_loss(s, y, t, alpha=20.0, temperature=2.0)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(out["loss"], ce + 20.0 * kd_loss(s, t, 2.0))
    assert torch.allclose(distillation_loss(s, y, t, alpha=0.0)["loss"], ce)


def test_lwd_projections_get_gradients():
    proj = LayerProjections(2, student_width=8, teacher_width=16)
    hs = [torch.randn(4, 8, requires_grad=True) for _ in range(2)]
    loss = proj(hs, torch.randn(4, 2, 16))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())
    assert all(h.grad is not None for h in hs)


def test_uniform_layer_map():
    assert uniform_layer_map(3, 6) == [(1, 2), (2, 4), (3, 6)]
    assert uniform_layer_map(2, 2) == [(1, 1), (2, 2)]


def test_metrics_multiclass():
    y = [0, 1, 2, 2, 1, 0]
    m = metrics(y, y, 3, teacher_pred=[0, 1, 2, 2, 1, 1])
    assert m["accuracy"] == 1.0 and m["macro_f1"] == 1.0 and math.isclose(m["mcc"], 1.0)
    assert math.isclose(m["agreement"], 5 / 6)
    const = metrics([0, 1, 0, 1], [0, 0, 0, 0], 2)
    assert const["mcc"] == 0.0 and const["accuracy"] == 0.5
