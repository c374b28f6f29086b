"""Weights files: what a broken or mismatched file says (one line naming it), and the VAE id that
ties a latent UNet to the VAE whose latents it was trained on."""
import dataclasses

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from fmnist_ldm.metrics import load_judge
from fmnist_ldm.pipeline import MODEL_DIR
from fmnist_ldm.vae import Posterior
from fmnist_ldm.weights import (WeightsError, build_unet, build_vae, load_model, load_pair, read_weights,
                                save_weights, weights_id)


def _rewrite_metadata(path, **changes):
    """The same tensors under changed metadata (a value of None drops the key)."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    meta = {k: v for k, v in {**meta, **changes}.items() if v is not None}
    save_file(load_file(str(path)), str(path), metadata=meta)


def _one_line_naming(error, *needles):
    msg = str(error.value)
    assert isinstance(error.value, ValueError) and "\n" not in msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


# --- (a) metadata without a config, or with a broken one ---

@pytest.mark.parametrize("config,needle", [
    (None, "no config"),
    ('{"latent_channels": 4,', "not valid JSON"),
    ('{"no_such_field": 1}', "no_such_field"),
    ('[1, 2]', "config"),
])
def test_a_missing_or_broken_config_names_the_file(tiny_model_dir, config, needle):
    path = tiny_model_dir / "vae.safetensors"
    _rewrite_metadata(path, config=config)
    with pytest.raises(WeightsError) as e:
        load_model(path, "vae")
    _one_line_naming(e, path, needle)


def test_broken_extra_metadata_names_the_file_and_key(tiny_model_dir):
    path = tiny_model_dir / "unet.safetensors"
    _rewrite_metadata(path, loss="[1.0, 0.9")
    with pytest.raises(WeightsError) as e:
        read_weights(path, "unet")
    _one_line_naming(e, path, "'loss'")


# --- (b) NaN / inf weights would draw black images ---

@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_a_tensor(tiny_cfg, tmp_path, bad):
    vae = build_vae(tiny_cfg)
    with torch.no_grad():
        vae.decoder.net[0].weight[0, 0, 0, 0] = bad
    path = tmp_path / "vae.safetensors"
    save_weights(vae, path, "vae", tiny_cfg)
    with pytest.raises(WeightsError) as e:
        load_model(path, "vae")
    _one_line_naming(e, path, "decoder.net.0.weight", "NaN or inf")


def test_non_finite_judge_is_refused(tmp_path):
    from fmnist_ldm.config import Config
    from fmnist_ldm.metrics import Judge
    judge = Judge()
    with torch.no_grad():
        judge.head[1].bias[3] = float("nan")
    path = tmp_path / "judge.safetensors"
    save_weights(judge, path, "judge", Config())
    with pytest.raises(WeightsError) as e:
        load_judge(path)
    _one_line_naming(e, path, "head.1.bias")


# --- (c) a VAE and a UNet that do not belong together ---

def _pair(folder, cfg, unet_cfg=None, vae_seed=0, link=True):
    """A VAE and a UNet in `folder`; the UNet records the VAE's id when link is set."""
    torch.manual_seed(vae_seed)
    vae_id = save_weights(build_vae(cfg), folder / "vae.safetensors", "vae", cfg)
    unet_cfg = unet_cfg or cfg
    extra = {"vae_id": vae_id} if link else {}
    save_weights(build_unet(unet_cfg), folder / "unet.safetensors", "unet", unet_cfg, **extra)
    return folder


def test_a_vae_file_carries_the_id_of_its_tensors(tiny_cfg, tmp_path):
    vae = build_vae(tiny_cfg)
    returned = save_weights(vae, tmp_path / "vae.safetensors", "vae", tiny_cfg)
    state, _, extra = read_weights(tmp_path / "vae.safetensors", "vae")
    assert extra["vae_id"] == returned == weights_id(state) == weights_id(vae.state_dict())
    assert len(returned) == 16
    with torch.no_grad():
        vae.scale.fill_(2.0)                   # any tensor changed: another id
    assert weights_id(vae.state_dict()) != returned


def test_a_matching_pair_loads(tiny_cfg, tmp_path):
    unet, cfg, vae = load_pair(_pair(tmp_path, tiny_cfg))
    assert cfg == tiny_cfg and not unet.training and vae is not None


def test_a_unet_with_the_vae_of_another_run_is_refused(tiny_cfg, tmp_path):
    """Same config, other weights (another run): only the id tells them apart."""
    folder = _pair(tmp_path, tiny_cfg)
    torch.manual_seed(1)
    save_weights(build_vae(tiny_cfg), folder / "vae.safetensors", "vae", tiny_cfg)
    with pytest.raises(WeightsError) as e:
        load_pair(folder)
    _one_line_naming(e, folder / "unet.safetensors", folder / "vae.safetensors", "another training run")


def test_a_unet_for_8_channel_latents_with_a_4_channel_vae_is_refused(tiny_cfg, tmp_path):
    folder = _pair(tmp_path, tiny_cfg, unet_cfg=dataclasses.replace(tiny_cfg, latent_channels=8), link=False)
    with pytest.raises(WeightsError) as e:
        load_pair(folder)
    _one_line_naming(e, folder / "unet.safetensors", folder / "vae.safetensors", "latent_channels 8", "4")


def test_a_vae_channels_mismatch_is_refused_even_with_a_recorded_id(tiny_cfg, tmp_path):
    folder = _pair(tmp_path, tiny_cfg, unet_cfg=dataclasses.replace(tiny_cfg, vae_channels=(8, 16, 16)))
    with pytest.raises(WeightsError) as e:
        load_pair(folder)
    _one_line_naming(e, "vae_channels (8, 16, 16)", "(8, 8, 16)")


def test_files_without_ids_fall_back_to_the_configs(tiny_cfg, tmp_path, tiny_model_dir):
    """tiny_model_dir's files record no id (as files written before ids): agreeing configs load,
    configs from another run (another seed) are refused."""
    assert "vae_id" not in read_weights(tiny_model_dir / "unet.safetensors", "unet")[2]
    load_pair(tiny_model_dir)
    folder = _pair(tmp_path, tiny_cfg, unet_cfg=dataclasses.replace(tiny_cfg, seed=1), link=False)
    with pytest.raises(WeightsError) as e:
        load_pair(folder)
    _one_line_naming(e, "seed 1", "0", "records no VAE id")


def test_fields_that_do_not_shape_the_latent_may_differ(tiny_cfg, tmp_path):
    """The UNet's config holds its own settings and the decoder stage's; neither moves the latents."""
    unet_cfg = dataclasses.replace(tiny_cfg, conditioning="cross_attention", out_dir="elsewhere",
                                   vae_gan_epochs=3, unet_epochs=9)
    load_pair(_pair(tmp_path, tiny_cfg, unet_cfg=unet_cfg, link=False))


def test_a_pixel_unet_needs_no_vae(tiny_cfg, tmp_path):
    cfg = dataclasses.replace(tiny_cfg, space="pixel")
    save_weights(build_unet(cfg), tmp_path / "unet_pixel.safetensors", "unet", cfg)
    unet, loaded, vae = load_pair(tmp_path, "unet_pixel.safetensors")
    assert vae is None and loaded.space == "pixel"


def test_shipped_unet_records_the_shipped_vae():
    _, _, unet_meta = read_weights(MODEL_DIR / "unet.safetensors", "unet")
    state, _, vae_meta = read_weights(MODEL_DIR / "vae.safetensors", "vae")
    assert unet_meta["vae_id"] == vae_meta["vae_id"] == weights_id(state)
    load_pair(MODEL_DIR)


def test_train_all_ties_the_unet_to_its_vae(tiny_cfg, monkeypatch):
    """train_all (its stages stubbed: no training here) records the VAE's id in the UNet file."""
    import fmnist_ldm.train as train
    images = torch.zeros(8, 28, 28, dtype=torch.uint8)
    monkeypatch.setattr(train, "load_fashion_mnist", lambda split, root: (images, torch.zeros(8, dtype=torch.long)))
    latents = torch.zeros(8, tiny_cfg.latent_channels, 7, 7)
    monkeypatch.setattr(train, "train_vae", lambda cfg, x, device=None: (build_vae(cfg), {"loss": [1.0], "seconds": 0.0, "encode_seconds": 0.0},
                                                            Posterior(latents, latents)))
    monkeypatch.setattr(train, "train_unet", lambda cfg, data, device=None: (build_unet(cfg), {"loss": [1.0], "seconds": 0.0}))
    train.train_all(tiny_cfg)
    out = tiny_cfg.out_dir                                # a tmp folder (see conftest)
    _, _, unet_meta = read_weights(f"{out}/unet.safetensors", "unet")
    _, _, vae_meta = read_weights(f"{out}/vae.safetensors", "vae")
    assert unet_meta["vae_id"] == vae_meta["vae_id"]
    load_pair(out)
