from pathlib import Path

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
    mean, std = torch.randn(32, 4, 7, 7), torch.rand(32, 4, 7, 7) * 0.1
    vae, hist = sharpen_decoder(cfg, vae, images, mean, std)
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
    mean, std = torch.randn(16, 4, 7, 7), torch.rand(16, 4, 7, 7) * 0.1
    vae, _ = sharpen_decoder(cfg, vae, images, mean, std)
    assert vae.decoder.blocks == 2
    save_weights(vae, tmp_path / "vae.safetensors", "vae", cfg)
    loaded, _ = load_model(tmp_path / "vae.safetensors", "vae")
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(mean[:2]), vae.decode(mean[:2]))
