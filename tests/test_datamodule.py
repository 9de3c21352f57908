"""Originals and their CFEs share a mini-batch, under shuffling and for any batch size ≥ 2."""
import pytest

from cod_pipeline.data.datamodule import Collate, FewShotDataModule, GroupBatchSampler, plan_steps


@pytest.mark.parametrize("batch_size", [2, 3, 4, 5, 8, 16])
def test_pairs_never_split(batch_size):
    groups = [g for g in range(13) for _ in range(2)]  # 13 original+CFE pairs
    sampler = GroupBatchSampler(groups, batch_size, shuffle=True, seed=0)
    orders = []
    for _ in range(4):  # several epochs: shuffling changes the order, never splits a pair
        batches = list(sampler)
        seen = [i for b in batches for i in b]
        assert sorted(seen) == list(range(26))
        for b in batches:
            assert len(b) <= batch_size
            for g in {groups[i] for i in b}:
                assert sum(groups[i] == g for i in b) == 2
        orders.append(seen)
    assert len({tuple(o) for o in orders}) > 1


def test_batch_too_small_for_a_pair():
    with pytest.raises(ValueError, match="cannot hold"):
        GroupBatchSampler([0, 0, 1, 1], batch_size=1, shuffle=True)


def test_datamodule_batches_carry_pairs_and_teacher_outputs():
    import torch

    rows = []
    for g in range(5):
        rows.append({"text": f"a good film {g}", "label": 1, "group": g, "t_logits": torch.tensor([0.0, 1.0])})
        rows.append({"text": f"a bad film {g}", "label": 0, "group": g, "is_cfe": True,
                     "t_logits": torch.tensor([1.0, 0.0])})

    def tok(texts):
        ids = torch.tensor([[len(t)] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    dm = FewShotDataModule(rows, [], Collate(tok), batch_size=4, seed=3)
    for batch in dm.train_dataloader():
        assert batch["is_cfe"].sum().item() * 2 == len(batch["labels"])
        assert batch["t_logits"].shape == (len(batch["labels"]), 2)
    assert dm.steps_per_epoch() == 3


def test_plan_steps_floor_and_cap():
    assert plan_steps(2, epochs=100, min_steps=150, max_steps=150) == 150
    assert plan_steps(1, epochs=10, min_steps=50) == 50
    assert plan_steps(64, epochs=100, min_steps=0) == 6400
