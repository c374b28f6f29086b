"""Mixed precision on the CPU: the float16 + loss-scaling path a T4 takes (autocast("cpu",
float16) and GradScaler("cpu") exist in this torch, so FMNIST_AMP=fp16 runs it here), resuming
across a change of precision, and NaN/inf stopped where it first appears."""
import math

import pytest
import torch

from fmnist_ldm import train as T
from fmnist_ldm.data import LatentDataset
from fmnist_ldm.device import NonFiniteError
from fmnist_ldm.vae import DecoderGAN, PatchDiscriminator, Posterior
from fmnist_ldm.weights import build_unet, build_vae

N, B = 16, 4


def _stage(cfg, stage):
    """A fresh model of `stage` and its step_loss on small random data (CPU), with a forward hook
    that records the dtype the model computed in."""
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(N, 1, 28, 28, generator=gen) * 2 - 1
    torch.manual_seed(0)
    if stage == "vae":
        model = build_vae(cfg, stage="vae")
        loss, net = T.vae_loss(cfg, model, images), model.decoder
    elif stage == "decoder_gan":
        model = DecoderGAN(build_vae(cfg).decoder, PatchDiscriminator(8))
        posterior = Posterior(torch.randn(N, 4, 7, 7, generator=gen), torch.randn(N, 4, 7, 7, generator=gen))
        loss, net = T.decoder_gan_loss(cfg, model, images, posterior), model.decoder
    else:
        model = build_unet(cfg)
        data = LatentDataset(torch.randn(N, 4, 7, 7, generator=gen), torch.rand(N, 4, 7, 7, generator=gen),
                             torch.randint(0, 10, (N,), generator=gen), 1.2)
        loss, net = T.unet_loss(cfg, model, data), model
    dtypes = set()
    net.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    return model, loss, dtypes


def _fit(cfg, stage, ckpt, steps=6, stop_at=None):
    model, loss, dtypes = _stage(cfg, stage)

    def after_step(step, _):
        if step == stop_at:
            raise KeyboardInterrupt            # the session ends here; the checkpoint before it stays
    try:
        out, hist = T.fit(model, loss, N, B, 1e-3, steps=steps, ema_decay=0.9, warmup_steps=1, ckpt_path=ckpt,
                          checkpoint_every=3, fingerprint={"stage": stage}, after_step=after_step, device="cpu")
    except KeyboardInterrupt:
        return None, None, dtypes
    return out, hist, dtypes


@pytest.mark.parametrize("stage", ["vae", "decoder_gan", "unet"])
def test_fp16_with_loss_scaling_trains_saves_the_scaler_and_resumes_exactly(monkeypatch, tmp_path, tiny_cfg, stage):
    monkeypatch.setenv("FMNIST_AMP", "fp16")
    whole, hist, dtypes = _fit(tiny_cfg, stage, tmp_path / "whole.ckpt")
    assert dtypes == {torch.float16}                      # the forward really ran in float16
    assert len(hist["loss"]) == 6 and all(math.isfinite(v) for v in hist["loss"])
    saved = torch.load(tmp_path / "whole.ckpt", weights_only=True)
    assert saved["scaler"]["scale"] > 0 and "_growth_tracker" in saved["scaler"]
    # stopped after step 4 (the checkpoint holds step 3), then resumed: the same weights as the whole run
    _fit(tiny_cfg, stage, tmp_path / "resumed.ckpt", stop_at=4)
    assert torch.load(tmp_path / "resumed.ckpt", weights_only=True)["step"] == 3
    resumed, hist2, _ = _fit(tiny_cfg, stage, tmp_path / "resumed.ckpt")
    assert hist2["loss"] == hist["loss"]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("first,then", [("fp32", "fp16"), ("fp16", "fp32"), ("bf16", "fp16")])
def test_a_checkpoint_resumes_under_another_precision(monkeypatch, tmp_path, tiny_cfg, first, then):
    """Written without a scaler (CPU, bf16 GPU) and resumed where one runs (a T4), and back: the
    scaler starts afresh or is left out, where it used to be KeyError: 'scaler'."""
    ckpt = tmp_path / "s.ckpt"
    monkeypatch.setenv("FMNIST_AMP", first)
    _fit(tiny_cfg, "unet", ckpt, stop_at=4)
    assert ("scaler" in torch.load(ckpt, weights_only=True)) == (first == "fp16")
    monkeypatch.setenv("FMNIST_AMP", then)
    _, hist, dtypes = _fit(tiny_cfg, "unet", ckpt)
    assert len(hist["loss"]) == 6 and all(math.isfinite(v) for v in hist["loss"])
    assert dtypes == {torch.float16 if then == "fp16" else torch.float32}
    assert ("scaler" in torch.load(ckpt, weights_only=True)) == (then == "fp16")


def test_a_nan_loss_stops_training_at_its_step_and_keeps_the_last_checkpoint(tmp_path, tiny_cfg):
    model, base, _ = _stage(tiny_cfg, "unet")
    calls = []

    def loss(idx, gen):
        calls.append(1)
        return base(idx, gen) * (float("nan") if len(calls) == 5 else 1.0)
    ckpt = tmp_path / "unet.ckpt"
    with pytest.raises(NonFiniteError) as e:
        T.fit(model, loss, N, B, 1e-3, steps=12, ckpt_path=ckpt, checkpoint_every=3, desc="UNet (latent)",
              device="cpu")
    msg = str(e.value)
    assert msg.startswith("UNet (latent): the loss became nan at step 5 of 12") and "\n" not in msg
    assert f"{ckpt} is kept as it was" in msg and "lower learning rate" in msg
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 3 and all(math.isfinite(v) for v in saved["history"])


def test_weights_gone_nan_are_never_saved(tmp_path, tiny_cfg):
    """Weights can break in the update after the last finite loss: the checkpoint checks them."""
    model, loss, _ = _stage(tiny_cfg, "unet")

    def poison(step, _):                           # after step 3's update, just before its checkpoint
        if step == 3:
            with torch.no_grad():
                model.conv_in.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="the weights became NaN or inf at step 3 of 6"):
        T.fit(model, loss, N, B, 1e-3, steps=6, ckpt_path=tmp_path / "u.ckpt", checkpoint_every=3,
              after_step=poison, device="cpu")
    assert not (tmp_path / "u.ckpt").exists()


def test_sampling_that_overflows_stops_at_the_step_it_happened(tiny_model_dir, capsys):
    from fmnist_ldm.cli import main
    from fmnist_ldm.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(tiny_model_dir, device="cpu")
    with pytest.raises(NonFiniteError, match=r"sampling went NaN or inf at step \d+ of 20 \(t = \d+\) for images 0-1"):
        pipe.generate([3, 4], guidance=1e308, guidance_interval=None)
    with pytest.raises(SystemExit) as e:
        main(["sample", "--model-dir", str(tiny_model_dir), "--guidance", "1e308", "--n-per-class", "1",
              "--out", str(tiny_model_dir / "s.png")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: sampling went NaN or inf at step") and err.count("\n") == 1
    assert "guidance scale in the useful range (1-15, not 1e+308)" in err
    assert not (tiny_model_dir / "s.png").exists()
