"""One config dataclass for the whole pipeline, its presets, and CPU set-up.

Every field is explained on its own line (nanoGPT style). `fast` is the whole pipeline
shrunk to minutes on a laptop CPU (the notebooks' default there, and CI's); `full` trains
the weights that ship in `model/` (the README quotes both times, measured, with the machine).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

import torch

# Fashion-MNIST's classes; index NUM_CLASSES is the learned null class (classifier-free guidance).
# They live here, at the bottom of the package's imports, so that every module can derive from them.
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28                          # 28 x 28 grey images
# The allowed values of Config's string fields (the modules that use them import them from here).
SPACES = ("latent", "pixel")
SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("eps", "v")
CONDITIONINGS = ("cross_attention", "time_embedding", "both")

# What each training stage's result depends on: train.py resumes a stage's checkpoint (or loads
# a finished one) when these agree, and names the ones that differ when they do not. The decoder
# GAN starts from the trained VAE; the UNet learns the VAE's latents, which the GAN stage never
# changes (it only retrains the decoder), and in pixel space no VAE at all.
BOOKKEEPING_FIELDS = ("data_dir", "bf16", "checkpoint_every", "out_dir")   # where and how, not what
_TRAINING = ("seed", "warmup_steps", "ema_decay")
VAE_FIELDS = _TRAINING + ("vae_channels", "latent_channels", "vae_kl_weight", "vae_epochs",
                          "vae_batch_size", "vae_lr")
DECODER_GAN_FIELDS = VAE_FIELDS + ("vae_gan_epochs", "vae_gan_weight", "vae_gan_lr", "vae_gan_decoder_blocks")
UNET_FIELDS = _TRAINING + ("space", "unet_channels", "unet_blocks", "unet_attention", "conditioning",
                           "class_tokens", "p_uncond", "timesteps", "schedule", "prediction",
                           "min_snr_gamma", "unet_epochs", "unet_steps", "batch_size", "lr", "weight_decay")


def one_of(choices) -> str:
    """('a', 'b', 'c') -> "'a', 'b' or 'c'", for error messages."""
    quoted = [repr(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
    bf16: bool = True                    # mixed precision where the device runs it fast (device.py: bf16, or fp16 on old GPUs)
    checkpoint_every: int = 500          # optimiser steps between atomic checkpoints
    out_dir: str = "runs/full"           # where checkpoints and exported weights go

    def __post_init__(self):
        """Refuse nonsense here, in one line naming the field, instead of training something other
        than what was asked for or failing deep inside torch."""
        for name in ("vae_channels", "unet_channels", "unet_attention"):
            if isinstance(getattr(self, name), list):          # JSON and users give lists
                setattr(self, name, tuple(getattr(self, name)))

        def need(ok: bool, name: str, allowed: str):
            if not ok:
                raise ValueError(f"Config.{name} must be {allowed}, not {getattr(self, name)!r}")

        for name, choices in (("space", SPACES), ("schedule", SCHEDULES), ("prediction", PREDICTIONS),
                              ("conditioning", CONDITIONINGS)):
            need(getattr(self, name) in choices, name, one_of(choices))
        for name in ("latent_channels", "vae_epochs", "vae_batch_size", "vae_gan_decoder_blocks",
                     "unet_blocks", "class_tokens", "timesteps", "unet_epochs", "batch_size",
                     "warmup_steps", "checkpoint_every"):
            need(_whole(getattr(self, name)) and getattr(self, name) >= 1, name, "a whole number >= 1")
        need(_whole(self.seed), "seed", "a whole number")
        need(_whole(self.vae_gan_epochs) and self.vae_gan_epochs >= 0, "vae_gan_epochs",
             "a whole number >= 0 (0 = no GAN stage)")
        need(self.unet_steps is None or _whole(self.unet_steps) and self.unet_steps >= 1, "unet_steps",
             "None or a whole number >= 1")
        for name in ("vae_lr", "vae_gan_lr", "lr"):
            need(_number(getattr(self, name)) and getattr(self, name) > 0, name, "a number > 0")
        for name in ("vae_kl_weight", "vae_gan_weight", "weight_decay"):
            need(_number(getattr(self, name)) and getattr(self, name) >= 0, name, "a number >= 0")
        need(_number(self.p_uncond) and 0 <= self.p_uncond < 1, "p_uncond", "a number with 0 <= p_uncond < 1")
        need(_number(self.ema_decay) and 0 <= self.ema_decay < 1, "ema_decay",
             "a number with 0 <= ema_decay < 1")
        need(self.min_snr_gamma is None or _number(self.min_snr_gamma) and self.min_snr_gamma > 0,
             "min_snr_gamma", "None or a number > 0")
        need(isinstance(self.bf16, bool), "bf16", "True or False")
        # GroupNorm splits a width c into min(8, c // 4) groups (vae.norm): it breaks on 1-3, 9, 11,
        # 13, 14, 17-19, ... and every c >= 32 that 8 does not divide; the UNet also normalises
        # the sum of two widths where a skip joins (12 and 24 work alone, 36 does not) and splits
        # them into 4 attention heads. Multiples of 8 are the widths for which all of that divides.
        widths = lambda t: isinstance(t, tuple) and all(_whole(c) and c >= 8 and c % 8 == 0 for c in t)
        need(widths(self.vae_channels) and 1 <= len(self.vae_channels) <= 3, "vae_channels",
             "1 to 3 widths (28 halves evenly twice: 28, 14, 7), each a multiple of 8")
        need(widths(self.unet_channels) and len(self.unet_channels) >= 1, "unet_channels",
             "at least one width, each a multiple of 8")
        need(isinstance(self.unet_attention, tuple) and len(self.unet_attention) == len(self.unet_channels)
             and all(isinstance(a, bool) for a in self.unet_attention), "unet_attention",
             f"one True/False per unet_channels level ({len(self.unet_channels)})")

    def stage_config(self, stage: str) -> dict:
        """{field: value} of the fields that stage "vae", "decoder_gan" or "unet" depends on."""
        names = {"vae": VAE_FIELDS, "decoder_gan": DECODER_GAN_FIELDS,
                 "unet": UNET_FIELDS + (VAE_FIELDS if self.space == "latent" else ())}[stage]
        return {k: getattr(self, k) for k in dict.fromkeys(names)}

    @property
    def num_classes(self) -> int:
        """Classes the UNet is conditioned on; class index num_classes is the null class."""
        return NUM_CLASSES

    @property
    def latent_size(self) -> int:
        """H = W of the VAE latent: the image halved once per VAE level after the first."""
        return IMAGE_SIZE // 2 ** (len(self.vae_channels) - 1)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """C x H x W of what the UNet diffuses: the latent, or the 1 x 28 x 28 image itself."""
        if self.space == "latent":
            return (self.latent_channels, self.latent_size, self.latent_size)
        return (1, IMAGE_SIZE, IMAGE_SIZE)

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


def from_preset(cls, presets: dict, name: str, **overrides):
    """cls(**presets[name], **overrides): a config from a table of named presets (each a dict of the
    fields it sets; the rest keep their defaults), with overrides on top. The one preset mechanism,
    for Config here and distill.DistillConfig; an unknown name is a one-line ValueError."""
    if name not in presets:
        raise ValueError(f"unknown preset {name!r}: use {one_of(list(presets))}")
    return cls(**{**presets[name], **overrides})


# `full` trains the shipped weights; `fast` is the same pipeline shrunk to minutes on a CPU.
PRESETS = {"fast": dict(vae_epochs=1, vae_gan_epochs=0, unet_epochs=2, vae_channels=(16, 32, 64),
                        unet_channels=(32, 64), warmup_steps=50, checkpoint_every=100, out_dir="runs/fast"),
           "full": {}}


def preset(name: str, **overrides) -> Config:
    """The Config of preset `name` ('fast' or 'full', see PRESETS) with `overrides`."""
    return from_preset(Config, PRESETS, name, **overrides)


def setup_cpu(threads: int | None = None) -> None:
    """Use every core (or `threads`); torch's default can leave cores idle in notebooks."""
    threads = threads or int(os.environ.get("FMNIST_THREADS", 0)) or os.cpu_count() or 1
    torch.set_num_threads(threads)
