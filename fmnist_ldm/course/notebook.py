"""What every notebook does first: pick the device and the mode, say which and why, and measure
how long training will take here before any cell starts it.

Mode: FMNIST_LDM_MODE (fast or full) when set; else `fast` under CI; else `full` on a GPU,
where it takes minutes, and `fast` on a CPU, where `full` would take an hour or more.
"""
from __future__ import annotations

import os
import time

import torch

from ..config import IMAGE_SIZE, Config, preset, setup_cpu
from ..device import describe, get_device, synchronize

MODES = ("fast", "full")
_started: dict = {}        # when notebook_preset ran: the notebook's start, for say_elapsed
REPO_URL = "https://github.com/fmnist-ldm/fmnist-ldm"     # the one place it is written (see SETUP_CELL)

# The first code cell of every notebook, verbatim (tests/test_colab.py checks it). A bare
# notebook opened in Colab has no repo around it: this cell clones the repo (code and shipped
# weights) and installs it, saying in plain words what failed if git or pip does. Colab starts
# every session in /content, after "Restart session" too, when the package is already
# installed: the cell then only moves back into the course. In a checkout it does nothing.
SETUP_CELL = f"""\
# Setup: in Colab (or any Jupyter without the package) fetch the course, its code and shipped weights.
import importlib.util, os, subprocess, sys
if importlib.util.find_spec("fmnist_ldm") is None:
    repo = os.environ.get("FMNIST_LDM_REPO", "{REPO_URL}")
    clone = [] if os.path.isdir("fmnist-ldm") else [["git", "clone", "--depth", "1", repo, "fmnist-ldm"]]
    for cmd in clone + [[sys.executable, "-m", "pip", "install", "-e", "fmnist-ldm"]]:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"Setup failed: `{{' '.join(cmd)}}` said:\\n{{done.stderr[-1500:]}}\\nCheck the "
                               "internet connection (and FMNIST_LDM_REPO, if set), then run this cell again.")
    sys.path.insert(0, os.path.abspath("fmnist-ldm"))
    import torch
    if not torch.cuda.is_available():
        print("No GPU here: in Colab, Runtime -> Change runtime type -> GPU makes training minutes, not hours.")
if os.path.isdir("fmnist-ldm/notebooks"):      # Colab's /content, also after Runtime -> Restart session
    os.chdir("fmnist-ldm/notebooks")"""

# What Colab reads from a notebook's metadata to open it on a GPU runtime (every .ipynb carries it).
COLAB_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


def notebook_mode(device: torch.device | None = None) -> tuple[str, str]:
    """(mode, why) for the notebooks."""
    env = os.environ.get("FMNIST_LDM_MODE", "").strip().lower()
    if env:
        if env not in MODES:
            raise ValueError(f"FMNIST_LDM_MODE={env!r}: use 'fast' or 'full'")
        return env, "FMNIST_LDM_MODE is set"
    if os.environ.get("CI", "").lower() in ("1", "true"):
        return "fast", "running under CI"
    device = device or get_device()
    if device.type == "cuda":
        return "full", "a GPU is here"
    return "fast", f"no CUDA GPU here ({device.type}); set FMNIST_LDM_MODE=full to train the shipped recipe"


def in_colab() -> bool:
    try:
        import google.colab  # noqa: F401  (only Colab has it)
        return True
    except ImportError:
        return False


def notebook_preset(**overrides) -> Config:
    """The notebooks' config in the chosen mode, after saying what was chosen and why. Whatever
    the notebooks train goes to runs/notebooks-<mode>/ (git-ignored), never to model/."""
    setup_cpu()
    device = get_device()
    mode, why = notebook_mode(device)
    _started.update(time=time.perf_counter(), mode=mode, device=device)
    print(f"Mode: {mode.upper()} ({why}). Device: {describe(device)}.")
    if device.type == "cpu" and in_colab():
        print("No GPU in this Colab runtime: Runtime -> Change runtime type -> GPU, then run again.")
    return preset(mode, out_dir=f"runs/notebooks-{mode}", **overrides)


def _seconds_per_step(model, step_loss, batch_size: int, cfg: Config, device, steps: int = 2) -> float:
    """The median time of `steps` optimiser steps as fit takes them (train.train_step: autocast,
    AdamW, the loss scaler where one runs, the EMA update), after one untimed warm-up step."""
    from ..device import generator, grad_scaler
    from ..train import EMA, train_step
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ema, scaler = EMA(model, cfg.ema_decay), grad_scaler(device, cfg.bf16)
    idx, times = torch.arange(batch_size, device=device), []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        train_step(model, step_loss, idx, generator(device, step), opt, ema=ema, scaler=scaler, device=device,
                   bf16=cfg.bf16)
        synchronize(device)                                 # CUDA and MPS run asynchronously
        times.append(time.perf_counter() - t0)
    return sorted(times[1:])[len(times[1:]) // 2]


def estimate_training(cfg: Config, stages=("vae", "decoder_gan", "unet"), n_images: int = 60_000) -> dict:
    """Measured, not guessed: time a few optimiser steps of each stage on this machine, with the
    library's own step losses (train.vae_loss, decoder_gan_loss, unet_loss) on one batch of random
    data, and multiply by the stage's number of steps. Returns seconds per stage (a stage the
    config switches off, like fast mode's decoder GAN, is left out)."""
    from ..data import LatentDataset
    from ..train import decoder_gan_loss, unet_loss, vae_loss
    from ..vae import DecoderGAN, Posterior
    from ..weights import build_unet, build_vae
    device, out = get_device(), {}
    images = lambda n: torch.rand(n, 1, IMAGE_SIZE, IMAGE_SIZE, device=device) * 2 - 1
    latents = lambda n: torch.randn(n, cfg.latent_channels, cfg.latent_size, cfg.latent_size, device=device)
    per_epoch = n_images // cfg.vae_batch_size
    if "vae" in stages:
        vae = build_vae(cfg, stage="vae")
        loss = vae_loss(cfg, vae, images(cfg.vae_batch_size))
        out["vae"] = _seconds_per_step(vae, loss, cfg.vae_batch_size, cfg, device) * cfg.vae_epochs * per_epoch
    if "decoder_gan" in stages and cfg.vae_gan_epochs:
        gan = DecoderGAN(build_vae(cfg).decoder)
        posterior = Posterior(latents(cfg.vae_batch_size), latents(cfg.vae_batch_size))     # (mean, logvar)
        loss = decoder_gan_loss(cfg, gan, images(cfg.vae_batch_size), posterior)
        per = _seconds_per_step(gan, loss, cfg.vae_batch_size, cfg, device)
        out["decoder_gan"] = per * cfg.vae_gan_epochs * per_epoch
    if "unet" in stages:
        unet, shape = build_unet(cfg), (cfg.batch_size, *cfg.sample_shape)
        std = torch.rand(shape, device=device) if cfg.space == "latent" else None      # pixel space: none
        data = LatentDataset(torch.randn(shape, device=device), std,
                             torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=device), 1.0)
        per = _seconds_per_step(unet, unet_loss(cfg, unet, data), cfg.batch_size, cfg, device)
        out["unet"] = per * (cfg.unet_steps or cfg.unet_epochs * (n_images // cfg.batch_size))
    return out


def say_estimate(cfg: Config, stages=("vae", "decoder_gan", "unet")) -> dict:
    """Print the measured estimate for the stages a notebook is about to train."""
    est = estimate_training(cfg, stages)
    parts = ", ".join(f"{k} {v / 60:.1f} min" for k, v in est.items())
    print(f"Training here should take about {sum(est.values()) / 60:.1f} min ({parts}; "
          "timed from a few steps on this machine).")
    return est


def say_elapsed() -> None:
    """A notebook's last cell: how long it took here, from notebook_preset to now, and on what.
    Prints only: a returned number would show under the cell as a bare float."""
    from ..device import machine
    if not _started:
        raise RuntimeError("say_elapsed() measures from notebook_preset(): run the notebook's first cells first.")
    seconds = time.perf_counter() - _started["time"]
    print(f"This notebook ran top to bottom in {seconds / 60:.1f} min ({_started['mode']} mode) on "
          f"{machine(_started['device'])}.")
