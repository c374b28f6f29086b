"""One training loop (`fit`) and the pipeline's stages on it: AdamW, EMA weights
(torch.optim.swa_utils), bf16 autocast, text progress bars (progress.py), and atomic checkpoints
holding model, optimiser, EMA, step, loss history and the stage's config, so that a run stopped at
any moment resumes exactly where it stopped (training_run.py: data order and noise are functions
of (seed, step), not of how often the process was restarted). The judge (metrics.train_judge) and
the ablations' timer use it too."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from .config import Config
from .device import autocast, get_device, grad_scaler, machine, randn
from .data import LatentDataset, load_fashion_mnist, to_model_range
from .diffusion import NoiseSchedule, training_loss
from .training_run import TrainingRun, batches
from .vae import DecoderGAN, Posterior, latent_scale, posteriors
from .weights import build_unet, build_vae, save_weights
from .progress import progress


def ema_with_warmup(decay: float):
    """EMA update avg <- d avg + (1 - d) p, with d = min(decay, (1 + n) / (10 + n)) so that short
    runs are not dominated by the random initial weights (the warm-up diffusers uses). Integer
    buffers (BatchNorm's num_batches_tracked) are counters, not weights: they are copied."""
    def update(avg_params, params, n):
        if not avg_params[0].is_floating_point():     # AveragedModel groups tensors by dtype
            torch._foreach_copy_(avg_params, params)
            return
        d = min(decay, (1 + int(n)) / (10 + int(n)))
        torch._foreach_lerp_(avg_params, params, 1 - d)   # avg + (1 - d)(p - avg) = d avg + (1 - d) p
    return update


class EMA(AveragedModel):
    """torch's AveragedModel (weights and buffers) updated by ema_with_warmup, without waiting for
    the GPU: AveragedModel.update_parameters copies its step counter from the CPU to the device at
    every call, and such a copy waits for all the work queued before it. Here the counter is read
    where it lives, on the CPU. The state dict is AveragedModel's, so checkpoints are unchanged."""

    def __init__(self, model, decay: float):
        super().__init__(model, multi_avg_fn=ema_with_warmup(decay), use_buffers=True)

    @torch.no_grad()
    def update_parameters(self, model):
        n = int(self.n_averaged)                     # a CPU tensor: reading it costs no wait
        pairs = list(zip([*self.module.parameters(), *self.module.buffers()],
                         [*model.parameters(), *model.buffers()]))
        for floating in (True, False):               # weights averaged, integer counters copied
            avg = [a.detach() for a, _ in pairs if a.is_floating_point() == floating]
            new = [p.detach() for a, p in pairs if a.is_floating_point() == floating]
            if avg:
                torch._foreach_copy_(avg, new) if n == 0 else self.multi_avg_fn(avg, new, n)
        self.n_averaged += 1


def warmup_cosine(warmup: int, total: int):
    """Learning-rate factor at step s: linear warm-up over `warmup` steps (0 or 1: none), then
    cosine decay to 0 at step `total` (Loshchilov & Hutter 2017)."""
    warmup, total = max(warmup, 1), max(total, 1)
    return lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0)))


def train_step(model, step_loss, idx, gen, opt, *, ema=None, scaler=None, lr_schedule=None,
               device=torch.device("cpu"), bf16: bool = True) -> torch.Tensor:
    """One optimiser step, the body of fit's loop (the one place where the forward pass runs under
    autocast and the weights are updated; notebook 04 checks a step written by hand against it):
        loss = step_loss(idx, gen)       (under autocast: mixed precision where the device is fast at it)
        gradients of the loss            (through the loss scaler, which only fp16 needs)
        opt.step()                       (skipped by the scaler if fp16 gradients overflowed)
        lr_schedule.step()               (the learning rate for the next step)
        ema.update_parameters(model)     (ema <- d ema + (1 - d) weights, see ema_with_warmup)
    Returns the loss, detached and still on the device: reading it would wait for the GPU."""
    with autocast(device, bf16):
        loss = step_loss(idx, gen)
    opt.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)                            # opt.step(), unless fp16 gradients overflowed
        scaler.update()
    if lr_schedule is not None:
        lr_schedule.step()
    if ema is not None:
        ema.update_parameters(model)
    return loss.detach()


def _trained_parts(model, lr, weight_decay, lr_schedule, warmup_steps, total, ema_decay, bf16, device) -> dict:
    """What training changes, and a checkpoint holds, by name: the model, AdamW, the LR schedule,
    and the EMA and the loss scaler where they are used (the scaler only in float16)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = grad_scaler(device, bf16)
    sched = (lr_schedule(opt, total) if lr_schedule else
             torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(warmup_steps, total)))
    ema = None if ema_decay is None else EMA(model, ema_decay)
    return {"model": model, "opt": opt, "sched": sched, **({"ema": ema} if ema else {}),
            **({"scaler": scaler} if scaler.is_enabled() else {})}


def fit(model, step_loss, n_items: int, batch_size: int, lr: float, *, epochs: int | None = None,
        steps: int | None = None, seed: int = 0, weight_decay: float = 0.0, warmup_steps: int = 1,
        lr_schedule=None, ema_decay: float | None = None, bf16: bool = True,
        ckpt_path: Path | None = None, fingerprint: dict | None = None, checkpoint_every: int = 500,
        desc: str = "train", after_step=None, device=None):
    """The one training loop: the VAE, decoder GAN and UNet stages, the judge, the ablations' timer.

    step_loss(indices, generator) -> scalar loss of one batch of `batch_size` of the n_items
    examples. Epoch e visits them in the order randperm(seed, e), and step s's noise comes from a
    generator seeded by (seed, s), so a resumed run repeats an unbroken one exactly.
    Trains `epochs` passes over the data, or exactly `steps` steps when given.
    AdamW (weight_decay 0 is Adam); lr_schedule(optimizer, total_steps) -> an LR scheduler stepped
    after every step, by default linear warm-up over warmup_steps, then cosine decay.
    ema_decay: also keep an EMA of the weights and float buffers (EMA, ema_with_warmup) and return
    it; None returns the trained model itself.
    ckpt_path: atomic checkpoints every checkpoint_every steps and at the end, holding `fingerprint`
    (what the result depends on, e.g. Config.stage_config): a checkpoint is resumed when the
    fingerprint fields it knows agree, and refused, naming them, when they do not.
    after_step(step, loss): called after every optimiser step (the ablations time steps with it).
    device (see device.py): the model moves there, and step_loss gets indices and a generator on
    it, so the data it indexes should live there too (on a GPU: no per-batch copies, no loader).
    Mixed precision follows the device (bf16; fp16 with loss scaling on GPUs without bf16); a
    checkpoint resumes under another precision (its loss scaler state is used where one runs).
    A NaN or inf loss, or weights that went NaN or inf, stop the run with a NonFiniteError naming
    the stage and step before anything broken is saved: the last checkpoint stays as it was.
    Nothing in a step waits for the GPU: losses are read every 50 steps, and the data order is
    drawn once per epoch.
    Returns (model or EMA model, in eval mode, on `device`, {"loss": per-step losses, "seconds":
    training time, earlier processes' included})."""
    if batch_size > n_items:
        raise ValueError(f"batch_size ({batch_size}) must be at most the number of items to train on ({n_items})")
    total = steps if steps is not None else (epochs or 0) * (n_items // batch_size)
    if total < 1:
        raise ValueError(f"fit needs epochs >= 1 or steps >= 1, not epochs={epochs}, steps={steps}")
    device = get_device(device)
    model.to(device)
    parts = _trained_parts(model, lr, weight_decay, lr_schedule, warmup_steps, total, ema_decay, bf16, device)
    opt, sched, ema, scaler = parts["opt"], parts["sched"], parts.get("ema"), parts.get("scaler")
    run = TrainingRun(parts, ckpt_path, fingerprint or {}, desc, total, device, bf16)
    run.resume()
    model.train()
    bar = progress(total=total, initial=run.step, desc=desc, mininterval=2)
    t0 = time.perf_counter() - run.elapsed
    for idx, gen in batches(n_items, batch_size, seed, run.step, total, device):
        loss = train_step(model, step_loss, idx, gen, opt, ema=ema, scaler=scaler, lr_schedule=sched,
                          device=device, bf16=bf16)
        run.step += 1
        run.pending.append(loss)
        bar.update(1)
        if run.step % 50 == 0 or after_step is not None:   # .item() waits for the GPU: not every step
            run.read_losses()
        if run.step % 50 == 0:
            bar.set_postfix(loss=f"{sum(run.history[-50:]) / 50:.4f}")
        run.elapsed = time.perf_counter() - t0
        if after_step is not None:
            after_step(run.step, run.history[-1])
        if ckpt_path is not None and (run.step % checkpoint_every == 0 or run.step == total):
            run.save()
    run.read_losses()
    if ckpt_path is None:                           # else the last save() checked them
        run.check_weights()
    bar.close()
    return (model if ema is None else ema.module).eval(), {"loss": run.history, "seconds": run.elapsed}


def fit_stage(cfg: Config, stage: str, model, step_loss, n_items: int, batch_size: int, lr: float,
              ckpt_name: str, desc: str, epochs: int | None = None, steps: int | None = None,
              weight_decay: float = 0.0, device=None, after_step=None):
    """fit() with a pipeline stage's settings from cfg: its seed, warm-up, EMA, bf16, and a
    checkpoint in cfg.out_dir fingerprinted by the fields the stage depends on."""
    return fit(model, step_loss, n_items, batch_size, lr, epochs=epochs, steps=steps, seed=cfg.seed,
               weight_decay=weight_decay, warmup_steps=cfg.warmup_steps, ema_decay=cfg.ema_decay,
               bf16=cfg.bf16, ckpt_path=Path(cfg.out_dir) / ckpt_name,
               fingerprint=cfg.stage_config(stage), checkpoint_every=cfg.checkpoint_every, desc=desc,
               device=device, after_step=after_step)


def train_vae(cfg: Config, images: torch.Tensor, device=None, after_step=None):
    """images: float [N,1,28,28] in [-1,1]. Trains on `device` (device.py's policy; the images
    move there once). Returns the EMA VAE with its latent scale set, its history (with
    "encode_seconds"), and the Posterior of every image (the UNet's training data), all on the CPU."""
    torch.manual_seed(cfg.seed)
    device = get_device(device)
    vae, images = build_vae(cfg, stage="vae"), images.to(device)
    vae, hist = fit_stage(cfg, "vae", vae, vae_loss(cfg, vae, images), len(images), cfg.vae_batch_size, cfg.vae_lr,
                          "vae.ckpt", "VAE", epochs=cfg.vae_epochs, device=device,
                          after_step=after_step)
    t0 = time.perf_counter()
    posterior = posteriors(vae, images, bf16=cfg.bf16)
    hist["encode_seconds"] = time.perf_counter() - t0      # this process's, even when the VAE was loaded
    mean, std = posterior.mean, posterior.std
    eps = randn(mean.shape, cfg.seed, mean.device)          # on the CPU: the same scale on every device
    vae.scale.fill_(latent_scale(mean, std, eps).item())    # unit-variance latents for the diffusion model
    return vae.cpu(), hist, posterior


def sharpen_decoder(cfg: Config, vae, images: torch.Tensor, posterior: Posterior, device=None, after_step=None):
    """Fine-tune the decoder against a patch discriminator (encoder, latents and scale unchanged).
    posterior: every image's (posteriors). Returns the VAE with the EMA decoder (on the CPU), and history."""
    torch.manual_seed(cfg.seed + 2)
    device = get_device(device)
    images, posterior = images.to(device), posterior.to(device)
    if cfg.vae_gan_decoder_blocks > vae.decoder.blocks:
        vae.decoder = vae.decoder.deepened(cfg.vae_gan_decoder_blocks)
    gan = DecoderGAN(vae.decoder)
    ema_gan, hist = fit_stage(cfg, "decoder_gan", gan, decoder_gan_loss(cfg, gan, images, posterior), len(images),
                              cfg.vae_batch_size, cfg.vae_gan_lr, "decoder_gan.ckpt", "decoder (GAN)",
                              epochs=cfg.vae_gan_epochs, device=device, after_step=after_step)
    vae.decoder.load_state_dict(ema_gan.decoder.state_dict())
    return vae.cpu().eval(), hist


def vae_loss(cfg: Config, vae, images: torch.Tensor):
    """step_loss(indices, generator) of the VAE stage: reconstruction + KL of one batch of `images`
    (on the training device)."""
    return lambda idx, gen: vae.loss(images[idx], cfg.vae_kl_weight, gen)[0]


def decoder_gan_loss(cfg: Config, gan, images: torch.Tensor, posterior: Posterior):
    """step_loss of the decoder-GAN stage: latents drawn from each image's posterior, decoded,
    judged; images and posterior on the training device."""
    mean, std = posterior.mean, posterior.std                  # std once, not at every step

    def loss(idx, gen):
        z = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=gen, device=mean.device)
        return gan.loss(images[idx], z, cfg.vae_gan_weight)[0]
    return loss


def unet_loss(cfg: Config, unet, data: LatentDataset):
    """step_loss(indices, generator) of the UNet stage: the diffusion loss of one batch."""
    schedule = NoiseSchedule(cfg.schedule, cfg.timesteps)

    def loss(idx, gen):
        x0, y = data.batch(idx, gen)
        return training_loss(unet, schedule, x0, y, cfg.prediction, cfg.p_uncond, cfg.num_classes, gen,
                             cfg.min_snr_gamma)
    return loss


def train_unet(cfg: Config, data: LatentDataset, device=None, after_step=None):
    """The EMA UNet trained on `data` for cfg.unet_epochs (or exactly cfg.unet_steps) on `device`
    (the latents move there once: they fit in any GPU's memory), and history. The UNet comes
    back on the CPU."""
    torch.manual_seed(cfg.seed + 1)
    device = get_device(device)
    unet, data = build_unet(cfg), data.to(device)
    unet, hist = fit_stage(cfg, "unet", unet, unet_loss(cfg, unet, data), len(data), cfg.batch_size, cfg.lr,
                           f"unet_{cfg.space}.ckpt", f"UNet ({cfg.space})", epochs=cfg.unet_epochs,
                           steps=cfg.unet_steps, weight_decay=cfg.weight_decay, device=device,
                           after_step=after_step)
    return unet.cpu(), hist


def train_all(cfg: Config, device=None):
    """VAE, then latents encoded once, then the UNet, all on `device`; exports EMA weights to
    cfg.out_dir. Each stage resumes from its checkpoint; a finished stage is loaded, not redone."""
    device = get_device(device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_fashion_mnist("train", cfg.data_dir)
    x = to_model_range(images)
    timings = {}
    vae_id = None                              # pixel space: the UNet belongs to no VAE
    if cfg.space == "latent":
        vae, hist, posterior = train_vae(cfg, x, device)
        # hist["seconds"] counts earlier processes' training too: time since start minus it is not
        # the encoding time (on a resumed run it can be negative), so the encoding is timed itself
        timings["vae_seconds"] = hist["seconds"]
        timings["encode_seconds"] = hist["encode_seconds"]
        gan = {"decoder_gan_seconds": 0, "decoder_gan_loss": []}
        if cfg.vae_gan_epochs:
            vae, gan_hist = sharpen_decoder(cfg, vae, x, posterior, device)
            gan = {"decoder_gan_seconds": gan_hist["seconds"], "decoder_gan_loss": gan_hist["loss"][::10]}
            timings["decoder_gan_seconds"] = gan_hist["seconds"]
        vae_id = save_weights(vae, out / "vae.safetensors", "vae", cfg, loss=hist["loss"][::10],
                              seconds=hist["seconds"], machine=machine(device, cfg.bf16), **gan)
        data = LatentDataset(posterior.mean, posterior.std, labels, vae.scale.item())
    else:
        data = LatentDataset(x, None, labels, 1.0)
    unet, hist = train_unet(cfg, data, device)
    timings["unet_seconds"] = hist["seconds"]
    name = "unet.safetensors" if cfg.space == "latent" else "unet_pixel.safetensors"
    save_weights(unet, out / name, "unet", cfg, loss=hist["loss"][::10], machine=machine(device, cfg.bf16), **timings,
                 vae_id=vae_id)   # its VAE: load_pair refuses the VAE of another run
    return timings
