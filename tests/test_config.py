"""Config: nonsense is refused in one line naming the field; what it accepts builds and runs;
shapes and class counts are derived from it, not hard-coded."""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from fmnist_ldm.config import Config, preset

MODEL_DIR = Path(__file__).resolve().parent.parent / "model"


@pytest.mark.parametrize("field,value,allowed", [
    ("space", "pxiel", "'latent' or 'pixel'"),
    ("schedule", "quadratic", "'linear' or 'cosine'"),
    ("prediction", "x0", "'eps' or 'v'"),
    ("conditioning", "film", "'cross_attention', 'time_embedding' or 'both'"),
    ("vae_epochs", 0, "whole number >= 1"),
    ("unet_epochs", 2.5, "whole number >= 1"),
    ("vae_batch_size", 0, "whole number >= 1"),
    ("batch_size", -1, "whole number >= 1"),
    ("timesteps", 0, "whole number >= 1"),
    ("latent_channels", 0, "whole number >= 1"),
    ("unet_blocks", 0, "whole number >= 1"),
    ("class_tokens", 0, "whole number >= 1"),
    ("vae_gan_decoder_blocks", 0, "whole number >= 1"),
    ("checkpoint_every", 0, "whole number >= 1"),
    ("vae_gan_epochs", -1, "whole number >= 0"),
    ("unet_steps", 0, "None or a whole number >= 1"),
    ("warmup_steps", 0, "whole number >= 1"),
    ("p_uncond", 1.0, "0 <= p_uncond < 1"),
    ("p_uncond", -0.1, "0 <= p_uncond < 1"),
    ("ema_decay", 1.0, "0 <= ema_decay < 1"),
    ("min_snr_gamma", 0.0, "None or a number > 0"),
    ("lr", 0.0, "number > 0"),
    ("vae_lr", "fast", "number > 0"),
    ("weight_decay", -1e-4, "number >= 0"),
    ("vae_kl_weight", -1.0, "number >= 0"),
    ("bf16", "yes", "True or False"),
    ("vae_channels", (32, 36, 128), "multiple of 8"),
    ("vae_channels", (32, 64, 128, 256), "1 to 3 widths"),
    ("unet_channels", (48, 100), "multiple of 8"),
    ("unet_channels", (12, 24), "multiple of 8"),
    ("unet_channels", (), "at least one width"),
    ("unet_attention", (True,), "one True/False per unet_channels level (2)"),
    ("unet_attention", (0, 1), "one True/False per unet_channels level (2)"),
])
def test_nonsense_is_one_clear_error(field, value, allowed):
    with pytest.raises(ValueError) as e:
        Config(**{field: value})
    msg = str(e.value)
    assert msg.startswith(f"Config.{field} must be") and allowed in msg and "\n" not in msg, msg
    with pytest.raises(ValueError, match=f"Config.{field} must be"):       # replace checks too
        dataclasses.replace(Config(), **{field: value})


@pytest.mark.parametrize("field", ["vae_channels", "unet_channels"])
def test_every_width_config_accepts_builds_and_runs(field):
    """Widths 1..40 at each level: either Config refuses them, or the models build and run
    (GroupNorm of min(8, c // 4) groups, 4 attention heads, the UNet's concatenated skips)."""
    from fmnist_ldm.weights import build_unet, build_vae
    base = Config(vae_channels=(8, 8, 8), unet_channels=(8, 8))
    accepted = []
    for level in range(len(getattr(base, field))):
        for c in range(1, 41):
            widths = list(getattr(base, field))
            widths[level] = c
            try:
                cfg = dataclasses.replace(base, **{field: tuple(widths)})
            except ValueError as e:
                assert str(e).startswith(f"Config.{field} must be")
                continue
            accepted.append(c)
            with torch.no_grad():
                if field == "vae_channels":
                    z = build_vae(cfg).encode(torch.zeros(1, 1, 28, 28))[0]
                    assert z.shape[1:] == cfg.sample_shape
                else:
                    x = torch.zeros(2, *cfg.sample_shape)
                    assert build_unet(cfg)(x, torch.tensor([0, 999]), torch.tensor([0, 10])).shape == x.shape
    assert set(accepted) == {8, 16, 24, 32, 40}


def test_round_trip_and_lists_become_tuples():
    for cfg in (preset("full"), preset("fast"), preset("fast", space="pixel", min_snr_gamma=5.0)):
        assert Config.from_dict(json.loads(cfg.to_json())) == cfg
    assert Config(unet_channels=[48, 96]).unet_channels == (48, 96)


@pytest.mark.parametrize("path", sorted(MODEL_DIR.glob("*.safetensors")), ids=lambda p: p.stem)
def test_the_shipped_weights_configs_still_load(path):
    from safetensors import safe_open
    from fmnist_ldm.weights import read_weights
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    stored = json.loads(meta["config"])
    _, cfg, _ = read_weights(path, meta["kind"])
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert all(getattr(cfg, k) == (tuple(v) if isinstance(v, list) else v) for k, v in stored.items())


def test_derived_shapes_and_class_count():
    from fmnist_ldm.data import CLASS_NAMES
    cfg = Config()
    assert cfg.num_classes == len(CLASS_NAMES) == 10
    assert cfg.latent_size == 7 and cfg.sample_shape == (4, 7, 7)
    assert Config(vae_channels=(32, 64), latent_channels=8).sample_shape == (8, 14, 14)
    assert Config(vae_channels=(32,)).sample_shape == (4, 28, 28)
    assert Config(space="pixel").sample_shape == (1, 28, 28)


def test_pipeline_samples_a_two_level_vae_at_its_latent_size(tmp_path):
    """A 14x14 latent (two VAE levels) used to get 7x7 noise: images came out 14x14."""
    from fmnist_ldm.pipeline import Pipeline
    from fmnist_ldm.weights import build_unet, build_vae
    cfg = preset("fast", vae_channels=(8, 16), unet_channels=(16, 32))
    torch.manual_seed(0)
    pipe = Pipeline(build_unet(cfg).eval(), cfg, build_vae(cfg).eval())
    assert pipe.generate([0, 10], steps=2).images.shape == (2, 28, 28)
