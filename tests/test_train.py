import math
from pathlib import Path

import pytest
import torch

from fmnist_ldm.files import atomic_save
from fmnist_ldm.train import fit
from fmnist_ldm.vae import Posterior


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
    return fit(model, loss, 64, 8, 1e-2, epochs=epochs, seed=cfg.seed, warmup_steps=cfg.warmup_steps,
               ema_decay=cfg.ema_decay, bf16=cfg.bf16, ckpt_path=ckpt, fingerprint=cfg.to_dict(),
               checkpoint_every=cfg.checkpoint_every, desc="test")


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
    with pytest.raises(ValueError, match=r"another config \(lr differ\)"):
        _run(dataclasses.replace(tiny_cfg, lr=0.5), tmp_path / "c.ckpt", epochs=1)


def test_resume_accepts_a_checkpoint_older_than_a_new_config_field(tiny_cfg, tmp_path):
    """A checkpoint written before a Config field existed (e.g. vae_gan_epochs) still resumes."""
    import dataclasses
    cfg = dataclasses.replace(tiny_cfg, vae_gan_epochs=0)     # differs from the field's default
    _run(cfg, tmp_path / "d.ckpt", epochs=1)
    ck = torch.load(tmp_path / "d.ckpt", weights_only=True)
    del ck["config"]["vae_gan_epochs"]
    atomic_save(ck, tmp_path / "d.ckpt")
    _, hist = _run(cfg, tmp_path / "d.ckpt", epochs=2)
    assert len(hist["loss"]) == 16


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


def test_sharpen_decoder_leaves_the_encoder_and_latents_alone(tiny_cfg):
    import copy
    import dataclasses
    from fmnist_ldm.train import sharpen_decoder
    from fmnist_ldm.weights import build_vae
    cfg = dataclasses.replace(tiny_cfg, vae_gan_epochs=1, vae_batch_size=8, checkpoint_every=2,
                              warmup_steps=1, vae_gan_lr=1e-2)
    torch.manual_seed(0)
    vae = build_vae(cfg)
    encoder, decoder = copy.deepcopy(vae.encoder.state_dict()), copy.deepcopy(vae.decoder.state_dict())
    images = torch.rand(32, 1, 28, 28) * 2 - 1
    posterior = Posterior(torch.randn(32, 4, 7, 7), torch.rand(32, 4, 7, 7) * 2 - 6)
    vae, hist = sharpen_decoder(cfg, vae, images, posterior)
    assert len(hist["loss"]) == 4
    assert (Path(cfg.out_dir) / "decoder_gan.ckpt").exists()      # resumable like every stage
    for k, v in vae.encoder.state_dict().items():
        torch.testing.assert_close(v, encoder[k])
    assert any(not torch.equal(v, decoder[k]) for k, v in vae.decoder.state_dict().items())


def test_sharpen_decoder_deepens_the_decoder_and_the_export_reloads(tiny_cfg, tmp_path):
    """With vae_gan_decoder_blocks = 2 the GAN stage trains a deeper decoder; the exported file
    rebuilds that decoder from its config alone, and decodes as the trained VAE does."""
    import dataclasses
    from fmnist_ldm.train import sharpen_decoder
    from fmnist_ldm.weights import build_vae, load_model, save_weights
    cfg = dataclasses.replace(tiny_cfg, vae_gan_epochs=1, vae_gan_decoder_blocks=2, vae_batch_size=8,
                              checkpoint_every=2, warmup_steps=1)
    torch.manual_seed(0)
    vae = build_vae(cfg, stage="vae")
    assert vae.decoder.blocks == 1
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    posterior = Posterior(torch.randn(16, 4, 7, 7), torch.rand(16, 4, 7, 7) * 2 - 6)
    vae, _ = sharpen_decoder(cfg, vae, images, posterior)
    assert vae.decoder.blocks == 2
    save_weights(vae, tmp_path / "vae.safetensors", "vae", cfg)
    loaded, _ = load_model(tmp_path / "vae.safetensors", "vae")
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(posterior.mean[:2]), vae.decode(posterior.mean[:2]))


# --- each stage resumes by the fields it depends on, not the whole config ---------------------

def _stage_cfg(tiny_cfg, **kw):
    import dataclasses
    return dataclasses.replace(tiny_cfg, vae_epochs=1, vae_gan_epochs=1, unet_epochs=1, vae_batch_size=8,
                               batch_size=8, warmup_steps=1, checkpoint_every=2, **kw)


def _images(n=32):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _same_folder(out_dir):
    """out_dir spelled another way: /a/b/run -> /a/b/../b/run/"""
    p = Path(out_dir)
    return str(p.parent / ".." / p.parent.name / p.name) + "/"


def _unrelated_changes(cfg, *more):
    """Bookkeeping fields, spelled and set otherwise, that no stage's result depends on."""
    return [dict(checkpoint_every=3), dict(out_dir=_same_folder(cfg.out_dir)), dict(data_dir="/elsewhere"),
            dict(bf16=not cfg.bf16), *more]


def test_a_finished_vae_stage_is_loaded_whatever_only_other_stages_change(tiny_cfg, monkeypatch):
    import dataclasses
    import pytest
    from fmnist_ldm.train import train_vae
    from fmnist_ldm.vae import VAE
    cfg, images = _stage_cfg(tiny_cfg), _images()
    _, hist, _ = train_vae(cfg, images)
    with monkeypatch.context() as m:
        m.setattr(VAE, "loss", lambda *a, **k: pytest.fail("the finished VAE stage was trained again"))
        for change in _unrelated_changes(cfg, dict(lr=0.5, unet_channels=(32, 64), prediction="eps"),
                                         dict(vae_gan_weight=0.9, vae_gan_epochs=0)):
            _, again, _ = train_vae(dataclasses.replace(cfg, **change), images)
            assert again["loss"] == hist["loss"], change
    with pytest.raises(ValueError, match=r"vae\.ckpt was written with another config \(vae_lr differ\)"):
        train_vae(dataclasses.replace(cfg, vae_lr=0.1, lr=0.5), images)


def test_a_finished_decoder_gan_stage_is_loaded_whatever_only_the_unet_changes(tiny_cfg):
    import dataclasses
    import pytest
    from fmnist_ldm.train import sharpen_decoder
    from fmnist_ldm.weights import build_vae
    cfg, images = _stage_cfg(tiny_cfg), _images()
    posterior = Posterior(torch.randn(32, 4, 7, 7), torch.rand(32, 4, 7, 7) * 2 - 6)
    run = lambda c: sharpen_decoder(c, build_vae(c, stage="vae"), images, posterior)[1]
    hist = run(cfg)
    for change in _unrelated_changes(cfg, dict(lr=0.5, unet_channels=(32, 64), schedule="linear")):
        assert run(dataclasses.replace(cfg, **change))["loss"] == hist["loss"], change
    with pytest.raises(ValueError, match=r"decoder_gan\.ckpt was written with another config \(vae_gan_weight differ\)"):
        run(dataclasses.replace(cfg, vae_gan_weight=0.9))
    with pytest.raises(ValueError, match=r"\(vae_kl_weight differ\)"):      # it starts from the VAE stage
        run(dataclasses.replace(cfg, vae_kl_weight=0.1))


@pytest.mark.parametrize("space", ["latent", "pixel"])
def test_a_finished_unet_stage_is_loaded_whatever_only_other_stages_change(tiny_cfg, space):
    import dataclasses
    from fmnist_ldm.data import LatentDataset
    from fmnist_ldm.train import train_unet
    cfg = _stage_cfg(tiny_cfg, space=space)
    shape = (32, *cfg.sample_shape)
    data = LatentDataset(torch.randn(shape), torch.rand(shape) * 0.1 if space == "latent" else None,
                         torch.arange(32) % 10, 1.0)
    _, hist = train_unet(cfg, data)
    # the decoder GAN never changes the latents; in pixel space the VAE does not matter at all
    vae_changes = [dict(vae_gan_weight=0.9, vae_gan_lr=1e-3)] + ([dict(vae_lr=0.1)] if space == "pixel" else [])
    for change in _unrelated_changes(cfg, *vae_changes):
        assert train_unet(dataclasses.replace(cfg, **change), data)[1]["loss"] == hist["loss"], change
    with pytest.raises(ValueError, match=r"\(lr, p_uncond differ\)"):
        train_unet(dataclasses.replace(cfg, lr=0.5, p_uncond=0.2), data)
    if space == "latent":
        with pytest.raises(ValueError, match=r"\(vae_lr differ\)"):         # other latents
            train_unet(dataclasses.replace(cfg, vae_lr=0.1), data)


def test_every_config_field_is_either_bookkeeping_or_some_stage_s(tiny_cfg):
    """A field added to Config must be sorted into a stage (or bookkeeping), or resuming ignores it."""
    import dataclasses
    from fmnist_ldm.config import BOOKKEEPING_FIELDS, Config
    fields = {f.name for f in dataclasses.fields(Config)}
    used = set(BOOKKEEPING_FIELDS)
    for stage in ("vae", "decoder_gan", "unet"):
        used |= set(tiny_cfg.stage_config(stage))
        assert not set(tiny_cfg.stage_config(stage)) & set(BOOKKEEPING_FIELDS)
    assert used == fields
    assert "vae_lr" not in dataclasses.replace(tiny_cfg, space="pixel").stage_config("unet")


def test_encoding_time_is_timed_not_inferred_on_a_resumed_run(tiny_cfg, monkeypatch):
    """encode_seconds was 'time since start - hist[seconds]', and hist[seconds] counts the earlier
    processes' training time too: a resumed run wrote a negative time (-14.75 s) into the weights."""
    import dataclasses
    import fmnist_ldm.train
    from fmnist_ldm.train import train_all
    from fmnist_ldm.weights import read_weights
    images = (torch.rand(32, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    monkeypatch.setattr(fmnist_ldm.train, "load_fashion_mnist", lambda split, root=None: (images, torch.arange(32) % 10))
    cfg = dataclasses.replace(_stage_cfg(tiny_cfg), vae_gan_epochs=0)
    train_all(cfg)
    ckpt = Path(cfg.out_dir) / "vae.ckpt"
    ck = torch.load(ckpt, weights_only=True)
    ck["elapsed"] = 1000.0                       # the VAE took 1000 s in an earlier process
    atomic_save(ck, ckpt)
    timings = train_all(cfg)
    meta = read_weights(Path(cfg.out_dir) / "unet.safetensors", "unet")[2]
    assert timings["vae_seconds"] == meta["vae_seconds"] == 1000.0
    assert 0 <= timings["encode_seconds"] == meta["encode_seconds"] < 60


# --- fit is the one generic loop ---------------------------------------------------------------

def test_fit_averages_a_model_with_integer_buffers():
    """BatchNorm counts batches in an int64 buffer: AveragedModel(use_buffers=True) hands it to the
    EMA update with the float weights' dtype group, and lerp on integers used to raise."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))
    data = torch.randn(64, 4)
    ema, hist = fit(model, lambda idx, gen: model(data[idx]).square().mean(), 64, 8, 1e-2, epochs=1,
                    ema_decay=0.9)
    assert len(hist["loss"]) == 8
    assert ema[1].num_batches_tracked.item() == model[1].num_batches_tracked.item() == 8
    assert not torch.equal(ema[1].running_mean, model[1].running_mean)     # float buffers: averaged


def test_warmup_cosine_with_no_warmup_and_with_some():
    from fmnist_ldm.train import warmup_cosine
    assert warmup_cosine(0, 10)(0) == warmup_cosine(1, 10)(0) == 1.0      # 0 used to divide by zero
    f = warmup_cosine(4, 10)
    assert [round(f(s), 6) for s in (0, 1, 3)] == [0.25, round(0.5 * 0.5 * (1 + math.cos(math.pi / 10)), 6),
                                                    round(0.5 * (1 + math.cos(math.pi * 3 / 10)), 6)]
    assert f(10) == 0.0


def test_fit_refuses_impossible_runs_in_one_line():
    model = torch.nn.Linear(4, 1)
    loss = lambda idx, gen: model(torch.randn(len(idx), 4)).mean()
    with pytest.raises(ValueError, match=r"batch_size \(128\) must be at most the number of items to train on \(64\)"):
        fit(model, loss, 64, 128, 1e-3, epochs=1)
    with pytest.raises(ValueError, match="fit needs epochs >= 1 or steps >= 1"):
        fit(model, loss, 64, 8, 1e-3)


def test_fit_takes_another_schedule_and_no_ema():
    """What the judge needs: its own LR schedule (one-cycle), no EMA, no checkpoint; and what the
    ablations' timer needs: a call after every step."""
    torch.manual_seed(0)
    model, data = torch.nn.Linear(4, 1), torch.randn(64, 4)
    made, seen = [], []

    def one_cycle(opt, total):
        made.append(torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=total))
        return made[-1]
    out, hist = fit(model, lambda idx, gen: model(data[idx]).square().mean(), 64, 8, 1e-3, steps=5,
                    lr_schedule=one_cycle, after_step=lambda step, loss: seen.append((step, loss)))
    assert out is model and not model.training
    assert made[0].last_epoch == 5 and made[0].total_steps == 5
    assert seen == list(enumerate(hist["loss"], 1)) and len(seen) == 5


def test_train_judge_on_a_tiny_set(monkeypatch):
    """The judge trains through fit (Adam, one-cycle LR, shifts); here on 200 synthetic images
    whose class is where a bright square sits, so that a few steps learn something."""
    from fmnist_ldm import metrics
    g = torch.Generator().manual_seed(0)

    def tiny(split, root=None):
        n = 200 if split == "train" else 100
        labels = torch.arange(n) % 10
        images = (torch.rand(n, 28, 28, generator=g) * 40).to(torch.uint8)
        for i, c in enumerate(labels.tolist()):
            r, col = 3 + 8 * (c // 4), 3 + 6 * (c % 4)
            images[i, r:r + 6, col:col + 5] = 255
        return images, labels
    monkeypatch.setattr(metrics.judge, "load_fashion_mnist", tiny)
    judge, acc = metrics.train_judge(epochs=3, seed=0, batch_size=20)
    assert isinstance(judge, metrics.Judge) and not judge.training
    assert 0.5 < acc <= 1.0


# --- the EMA averages, the right way round -----------------------------------------------------

def test_ema_update_keeps_d_of_the_average_and_gives_1_minus_d_to_the_new_weights():
    from fmnist_ldm.train import ema_with_warmup
    avg, new = [torch.zeros(3)], [torch.ones(3)]
    ema_with_warmup(0.999)(avg, new, torch.tensor(1))        # warm-up: d = (1 + 1) / (10 + 1)
    torch.testing.assert_close(avg[0], torch.full((3,), 9 / 11))
    avg = [torch.zeros(3)]
    ema_with_warmup(0.999)(avg, new, torch.tensor(10_000))    # d = min(0.999, 10001/10010) = 0.999
    torch.testing.assert_close(avg[0], torch.full((3,), 0.001))


def test_fit_returns_the_hand_computed_ema_which_is_diffusers_ema():
    """After step k the weights are p_k; the EMA starts as p_1 and then is
    e_k = d_k e_{k-1} + (1 - d_k) p_k with d_k = min(decay, k / (k + 9)), the warm-up of diffusers'
    EMAModel (decay (1 + s) / (10 + s) at its s = k - 1), which must agree."""
    from diffusers.training_utils import EMAModel
    torch.manual_seed(0)
    model, data, decay = torch.nn.Linear(4, 2), torch.randn(64, 4), 0.5
    initial = [p.detach().clone() for p in model.parameters()]
    snapshots = []
    ema, _ = fit(model, lambda idx, gen: (model(data[idx]) - 1).square().mean(), 64, 8, 0.05, steps=16,
                 ema_decay=decay, after_step=lambda step, loss: snapshots.append(
                     [p.detach().clone() for p in model.parameters()]))
    expected = [p.clone() for p in snapshots[0]]
    for k, params in enumerate(snapshots[1:], start=2):
        d = min(decay, k / (k + 9))
        expected = [d * e + (1 - d) * p for e, p in zip(expected, params)]
    reference = EMAModel([torch.nn.Parameter(p) for p in initial], decay=decay, foreach=False)
    for params in snapshots:
        reference.step([torch.nn.Parameter(p) for p in params])
    for got, want, ref in zip(ema.parameters(), expected, reference.shadow_params):
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got, ref)
    assert not torch.allclose(expected[0], snapshots[-1][0], atol=1e-3)   # an average, not the last weights
