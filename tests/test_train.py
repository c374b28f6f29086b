import torch

from fmnist_ldm.train import atomic_save, fit


def _run(cfg, ckpt, epochs, stop_after=None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    data = torch.randn(64, 4)
    calls = {"n": 0}

    def loss(idx, gen):
        calls["n"] += 1
        if stop_after is not None and calls["n"] > stop_after:
            raise KeyboardInterrupt          # the process dies mid-run
        return (model(data[idx]) - data[idx].sum(1, keepdim=True) + torch.randn(len(idx), 1, generator=gen)).pow(2).mean()
    return fit(model, loss, 64, epochs, 8, 1e-2, cfg, ckpt, "test")


def test_resume_continues_exactly(tiny_cfg, tmp_path):
    import dataclasses
    cfg = dataclasses.replace(tiny_cfg, checkpoint_every=5, warmup_steps=3)
    straight, hist = _run(cfg, tmp_path / "a.ckpt", epochs=3)
    try:
        _run(cfg, tmp_path / "b.ckpt", epochs=3, stop_after=12)   # dies after step 12; last ckpt at 10
    except KeyboardInterrupt:
        pass
    assert torch.load(tmp_path / "b.ckpt", weights_only=True)["step"] == 10
    resumed, hist2 = _run(cfg, tmp_path / "b.ckpt", epochs=3)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert hist["loss"] == hist2["loss"] and len(hist["loss"]) == 24


def test_resume_refuses_another_config(tiny_cfg, tmp_path):
    import dataclasses
    import pytest
    _run(tiny_cfg, tmp_path / "c.ckpt", epochs=1)
    with pytest.raises(ValueError, match="another config"):
        _run(dataclasses.replace(tiny_cfg, lr=0.5), tmp_path / "c.ckpt", epochs=1)


def test_atomic_save_leaves_no_partial_file(tmp_path):
    target = tmp_path / "x.ckpt"
    atomic_save({"a": 1}, target)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")
    try:
        atomic_save({"a": Boom()}, target)
    except RuntimeError:
        pass
    assert torch.load(target, weights_only=True) == {"a": 1}
