"""Training loops: AdamW, EMA weights (torch.optim.swa_utils), bf16 autocast, tqdm, and atomic
checkpoints holding model, optimiser, EMA, step, loss history and config, so that a run
stopped at any moment resumes exactly where it stopped (data order and noise are functions of
(seed, step), not of how often the process was restarted)."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from .config import Config, autocast, machine
from .data import LatentDataset, load_fashion_mnist, to_model_range
from .diffusion import NoiseSchedule, training_loss
from .vae import DecoderGAN
from .weights import build_unet, build_vae, save_weights


def atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)          # atomic on POSIX: the old checkpoint or the new, never half


def ema_with_warmup(decay: float):
    """EMA update avg <- d avg + (1 - d) p, with d = min(decay, (1 + n) / (10 + n)) so that short
    runs are not dominated by the random initial weights (the warm-up diffusers uses)."""
    def update(avg_params, params, n):
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        torch._foreach_lerp_(avg_params, params, 1 - d)
    return update


def _tuples(v):
    return tuple(v) if isinstance(v, list) else v


def warmup_cosine(warmup: int, total: int):
    return lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))


def fit(model, step_loss, n_items: int, epochs: int, batch_size: int, lr: float, cfg: Config,
        ckpt_path: Path, desc: str, weight_decay: float = 0.0, total_steps: int | None = None,
        stage: str | None = None):
    """Generic loop. step_loss(indices, generator) -> scalar loss. Returns (ema model, history).
    Trains `epochs` passes over n_items, or exactly `total_steps` steps when given. The checkpoint
    resumes when the fields `stage` depends on (cfg.stage_config; all fields if None) agree."""
    steps_per_epoch = n_items // batch_size
    total = total_steps or epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.warmup_steps, total))
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema_decay), use_buffers=True)
    fingerprint = cfg.stage_config(stage) if stage else cfg.to_dict()
    step, history, elapsed = 0, [], 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        # compare only the fields the checkpoint knows: fields added to Config since did not exist then
        changed = [k for k, v in fingerprint.items() if k in ck["config"] and _tuples(ck["config"][k]) != v]
        if changed:
            raise ValueError(f"{ckpt_path} was written with another config ({', '.join(sorted(changed))} "
                             "differ); delete it or use another out_dir to start afresh")
        model.load_state_dict(ck["model"]), ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"]), sched.load_state_dict(ck["sched"])
        step, history, elapsed = ck["step"], ck["history"], ck["elapsed"]
    save = lambda: atomic_save({"model": model.state_dict(), "ema": ema.state_dict(),
                                "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                                "history": history, "elapsed": elapsed, "config": fingerprint}, ckpt_path)
    model.train()
    bar = tqdm(total=total, initial=step, desc=desc, mininterval=2)
    t0 = time.perf_counter() - elapsed
    while step < total:
        epoch, i = divmod(step, steps_per_epoch)
        order = torch.randperm(n_items, generator=torch.Generator().manual_seed(cfg.seed * 10_007 + epoch))
        idx = order[i * batch_size:(i + 1) * batch_size]
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        with autocast(cfg.bf16):
            loss = step_loss(idx, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step(), sched.step(), ema.update_parameters(model)
        step += 1
        history.append(loss.item())
        bar.update(1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(history[-50:]) / 50:.4f}")
        elapsed = time.perf_counter() - t0
        if step % cfg.checkpoint_every == 0 or step == total:
            save()
    bar.close()
    return ema.module.eval(), {"loss": history, "seconds": elapsed}


def train_vae(cfg: Config, images: torch.Tensor):
    """images: float [N,1,28,28] in [-1,1]. Returns the EMA VAE with its latent scale set, its
    history (with "encode_seconds"), and the posterior (mean, std) of every image (the UNet's
    training data)."""
    torch.manual_seed(cfg.seed)
    vae = build_vae(cfg, stage="vae")
    loss = lambda idx, gen: vae.loss(images[idx], cfg.vae_kl_weight, gen)[0]
    vae, hist = fit(vae, loss, len(images), cfg.vae_epochs, cfg.vae_batch_size, cfg.vae_lr, cfg,
                    Path(cfg.out_dir) / "vae.ckpt", "VAE", stage="vae")
    t0 = time.perf_counter()
    mean, std = encode(vae, images, cfg)
    hist["encode_seconds"] = time.perf_counter() - t0      # this process's, even when the VAE was loaded
    z = mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(cfg.seed))
    vae.scale.fill_(1.0 / z.std().item())    # unit-variance latents for the diffusion model
    return vae, hist, (mean, std)


def sharpen_decoder(cfg: Config, vae, images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor):
    """Fine-tune the decoder against a patch discriminator (encoder, latents and scale unchanged).
    mean, std: the posterior of every image. Returns the VAE with the EMA decoder, and history."""
    torch.manual_seed(cfg.seed + 2)
    if cfg.vae_gan_decoder_blocks > vae.decoder.blocks:
        vae.decoder = vae.decoder.deepened(cfg.vae_gan_decoder_blocks)
    gan = DecoderGAN(vae.decoder)

    def loss(idx, gen):
        z = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen)
        return gan.loss(images[idx], z, cfg.vae_gan_weight)[0]
    ema_gan, hist = fit(gan, loss, len(images), cfg.vae_gan_epochs, cfg.vae_batch_size, cfg.vae_gan_lr,
                        cfg, Path(cfg.out_dir) / "decoder_gan.ckpt", "decoder (GAN)", stage="decoder_gan")
    vae.decoder.load_state_dict(ema_gan.decoder.state_dict())
    return vae.eval(), hist


@torch.no_grad()
def encode(vae, images: torch.Tensor, cfg: Config, batch: int = 1000):
    """Posterior (mean, std) of every image, in batches."""
    means, stds = [], []
    with autocast(cfg.bf16):
        for i in range(0, len(images), batch):
            m, logvar = vae.encode(images[i:i + batch])
            means.append(m.float()), stds.append(torch.exp(0.5 * logvar.float()))
    return torch.cat(means), torch.cat(stds)


def train_unet(cfg: Config, data: LatentDataset):
    torch.manual_seed(cfg.seed + 1)
    unet = build_unet(cfg)
    schedule = NoiseSchedule(cfg.schedule, cfg.timesteps)

    def loss(idx, gen):
        x0, y = data.batch(idx, gen)
        return training_loss(unet, schedule, x0, y, cfg.prediction, cfg.p_uncond, cfg.num_classes, gen,
                             cfg.min_snr_gamma)
    return fit(unet, loss, len(data), cfg.unet_epochs, cfg.batch_size, cfg.lr, cfg,
               Path(cfg.out_dir) / f"unet_{cfg.space}.ckpt", f"UNet ({cfg.space})", cfg.weight_decay,
               cfg.unet_steps, stage="unet")


def train_all(cfg: Config):
    """VAE, then latents encoded once, then the UNet; exports EMA weights to cfg.out_dir.
    Each stage resumes from its checkpoint; a finished stage is loaded, not redone."""
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_fashion_mnist("train", cfg.data_dir)
    x = to_model_range(images)
    timings = {}
    if cfg.space == "latent":
        vae, hist, (mean, std) = train_vae(cfg, x)
        # hist["seconds"] counts earlier processes' training too: time since start minus it is not
        # the encoding time (it went negative on resumed runs), so the encoding is timed itself
        timings["vae_seconds"] = hist["seconds"]
        timings["encode_seconds"] = hist["encode_seconds"]
        gan = {"decoder_gan_seconds": 0, "decoder_gan_loss": []}
        if cfg.vae_gan_epochs:
            vae, gan_hist = sharpen_decoder(cfg, vae, x, mean, std)
            gan = {"decoder_gan_seconds": gan_hist["seconds"], "decoder_gan_loss": gan_hist["loss"][::10]}
            timings["decoder_gan_seconds"] = gan_hist["seconds"]
        save_weights(vae, out / "vae.safetensors", "vae", cfg, loss=hist["loss"][::10],
                     seconds=hist["seconds"], machine=machine(), **gan)
        data = LatentDataset(mean, std, labels, vae.scale.item())
    else:
        data = LatentDataset(x, None, labels, 1.0)
    unet, hist = train_unet(cfg, data)
    timings["unet_seconds"] = hist["seconds"]
    name = "unet.safetensors" if cfg.space == "latent" else "unet_pixel.safetensors"
    save_weights(unet, out / name, "unet", cfg, loss=hist["loss"][::10], machine=machine(), **timings)
    return timings
