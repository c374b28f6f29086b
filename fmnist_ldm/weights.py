"""Weights on disk: safetensors files (they load without executing code) that carry their
model's config as metadata, so a file alone rebuilds its model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import Config
from .unet import UNet
from .vae import VAE


class WeightsError(ValueError):
    pass


def build_vae(cfg: Config, stage: str = "final") -> VAE:
    """stage "vae": as the VAE stage trains it; "final": as exported, i.e. with the decoder the GAN
    stage deepened (if that stage runs)."""
    blocks = cfg.vae_gan_decoder_blocks if stage == "final" and cfg.vae_gan_epochs else 1
    return VAE(cfg.vae_channels, cfg.latent_channels, blocks)


def build_unet(cfg: Config) -> UNet:
    return UNet(cfg.sample_shape[0], cfg.unet_channels, cfg.unet_blocks, cfg.unet_attention,
                cfg.num_classes, cfg.conditioning, cfg.class_tokens)


def save_weights(model: torch.nn.Module, path, kind: str, cfg: Config, **extra) -> None:
    """Write atomically (temp file, then rename): a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    meta = {"kind": kind, "config": cfg.to_json(), **{k: json.dumps(v) for k, v in extra.items()}}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)           # safetensors writes 0600; weights are meant to be shared
    os.replace(tmp, path)


def read_weights(path, kind: str):
    """(state_dict, Config, extra metadata) of a file written by save_weights for `kind`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist: train with `python -m fmnist_ldm "
                           "train` or point --model-dir at the folder holding the shipped weights")
    try:
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path} is not a safetensors weights file ({e})") from None
    if meta.get("kind") != kind:
        raise WeightsError(f"{path} holds {meta.get('kind') or 'foreign'} weights, not {kind} weights "
                           "written by fmnist_ldm")
    cfg = Config.from_dict(json.loads(meta["config"]))
    extra = {k: json.loads(v) for k, v in meta.items() if k not in ("kind", "config")}
    return state, cfg, extra


def load_model(path, kind: str):
    """Rebuild the model of kind 'vae' or 'unet' from its file; returns (model in eval mode, cfg)."""
    state, cfg, _ = read_weights(path, kind)
    model = {"vae": build_vae, "unet": build_unet}[kind](cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path} does not fit the {kind} its config describes: {str(e)[:200]}") from None
    return model.eval(), cfg
