"""One config dataclass for the whole pipeline, its presets, and CPU set-up.

Every field is explained on its own line (nanoGPT style). `fast` trains the whole
pipeline in about two minutes on 2 CPU cores (for notebooks in CI); `full` trains
the weights that ship in `model/`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import torch


@dataclass
class Config:
    # --- data ---
    seed: int = 0                        # one seed for data order, init and noise
    data_dir: str | None = None          # explicit Fashion-MNIST folder (else FMNIST_DATA, Debian, download)
    # --- VAE: 1x28x28 image <-> latent_channels x 7x7 latent ---
    vae_channels: tuple = (32, 64, 128)  # width at 28x28, 14x14, 7x7
    latent_channels: int = 4             # C of the C x 7 x 7 latent
    vae_kl_weight: float = 1e-5          # small KL keeps the latent smooth without blurring images
    vae_epochs: int = 5                  # passes over the 60k training images
    vae_batch_size: int = 128
    vae_lr: float = 2e-3
    vae_gan_epochs: int = 2              # then: decoder-only fine-tuning against a patch discriminator (0 = off)
    vae_gan_weight: float = 0.3          # weight of the adversarial term beside L1 + MSE
    vae_gan_lr: float = 2e-4
    vae_gan_decoder_blocks: int = 1      # residual blocks per decoder level in that stage (added ones start as identity)
    # --- denoiser UNet ---
    space: str = "latent"                # "latent" (LDM) or "pixel" (diffuse the 1x28x28 image itself)
    unet_channels: tuple = (48, 96)      # width per resolution level (7x7, 4x4 for latents)
    unet_blocks: int = 1                 # residual blocks per level on the way down (one more on the way up)
    unet_attention: tuple = (False, True)  # self-attention at each level (it is cheap at 4x4)
    conditioning: str = "both"           # "cross_attention" (to class tokens), "time_embedding", or both at once
    class_tokens: int = 4                # tokens per class that cross-attention attends to
    p_uncond: float = 0.1                # label dropout: how often the null class is trained (for guidance)
    # --- diffusion ---
    timesteps: int = 1000                # T of the forward process
    schedule: str = "cosine"             # "linear" (Ho et al.) or "cosine" (Nichol & Dhariwal)
    prediction: str = "v"                # "eps" or "v" (Salimans & Ho): what the UNet predicts
    min_snr_gamma: float | None = None   # Min-SNR-gamma loss weighting over t (Hang et al. 2023); None = plain MSE
    # --- UNet training ---
    unet_epochs: int = 30
    unet_steps: int | None = None        # if set, train this many steps instead (ablations at equal time)
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.999             # EMA of the weights; we always sample from the EMA
    warmup_steps: int = 500              # linear learning-rate warm-up, then cosine decay
    # --- machinery ---
    bf16: bool = True                    # bfloat16 autocast where the CPU has fast bf16 (AVX-512/AMX), else float32
    checkpoint_every: int = 500          # optimiser steps between atomic checkpoints
    out_dir: str = "runs/full"           # where checkpoints and exported weights go

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        # JSON has no tuples: restore them so configs compare equal after a round trip.
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def preset(name: str, **overrides) -> Config:
    """`full` trains the shipped weights; `fast` is the same pipeline shrunk to ~2 minutes."""
    if name == "full":
        cfg = Config()
    elif name == "fast":
        cfg = Config(vae_epochs=1, vae_gan_epochs=0, unet_epochs=2, vae_channels=(16, 32, 64),
                     unet_channels=(32, 64), warmup_steps=50, checkpoint_every=100,
                     out_dir="runs/fast")
    else:
        raise ValueError(f"unknown preset {name!r}: use 'fast' or 'full'")
    return dataclasses.replace(cfg, **overrides)


def setup_cpu(threads: int | None = None) -> None:
    """Use every core (or `threads`); torch's default can leave cores idle in notebooks."""
    threads = threads or int(os.environ.get("FMNIST_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(threads)
