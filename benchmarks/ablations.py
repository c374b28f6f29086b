"""Ablations at equal UNet training time (not part of CI), each trained from scratch here:

    python benchmarks/ablations.py conditioning --minutes 6   # cross-attention vs time-embedding vs both
    python benchmarks/ablations.py pixel --minutes 6          # latent vs pixel-space diffusion

Both sides get the same number of wall-clock minutes of UNet training (the step count is set
from a timed warm-up). Latent models reuse the shipped VAE: its one-off training time is
reported beside the table, since one VAE serves every latent model. Results go to
benchmarks/ablation_<what>.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import time
from pathlib import Path

import torch

from fmnist_ldm.config import CONDITIONINGS, NUM_CLASSES, setup_cpu
from fmnist_ldm.device import get_device, machine
from fmnist_ldm.data import LatentDataset, load_fashion_mnist, to_model_range
from fmnist_ldm.metrics import evaluate_samples, load_judge
from fmnist_ldm.pipeline import DEFAULTS, MODEL_DIR, Pipeline
from fmnist_ldm.train import fit, train_unet, unet_loss
from fmnist_ldm.vae import posteriors
from fmnist_ldm.weights import build_unet, load_model, read_weights, save_weights

HERE = Path(__file__).resolve().parent


def seconds_per_step(cfg, data, steps: int = 8, warm: int = 3) -> float:
    """Time optimiser steps of this config in the training loop itself (EMA and all, no
    checkpoints), to give every variant the same minutes; the first `warm` steps are not counted."""
    unet, ends, data = build_unet(cfg), [], data.to(get_device())
    fit(unet, unet_loss(cfg, unet, data), len(data), cfg.batch_size, cfg.lr, steps=steps, seed=cfg.seed,
        weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps, ema_decay=cfg.ema_decay,
        bf16=cfg.bf16, desc="timing", after_step=lambda step, loss: ends.append(time.perf_counter()))
    return (ends[-1] - ends[warm - 1]) / (steps - warm)


def variants(what: str, base):
    if what == "conditioning":
        return {m: dataclasses.replace(base, conditioning=m) for m in CONDITIONINGS}
    # pixel space: one more level (28 -> 14 -> 7), attention only at 7x7
    return {"latent": base, "pixel": dataclasses.replace(base, space="pixel", unet_channels=(32, 64, 96),
                                                           unet_attention=(False, False, True))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["conditioning", "pixel"])
    p.add_argument("--minutes", type=float, default=6.0, help="UNet training minutes per variant")
    p.add_argument("--n-per-class", type=int, default=200)
    a = p.parse_args()
    setup_cpu()
    vae, vae_cfg = load_model(MODEL_DIR / "vae.safetensors", "vae")
    images, labels = load_fashion_mnist("train")
    x = to_model_range(images)
    posterior = posteriors(vae, x, bf16=vae_cfg.bf16)
    mean, std = posterior.mean, posterior.std
    judge, rows = load_judge(), []
    for name, cfg in variants(a.what, dataclasses.replace(vae_cfg, out_dir=f"runs/ablation-{a.what}")).items():
        cfg = dataclasses.replace(cfg, out_dir=f"{cfg.out_dir}/{name}")
        data = LatentDataset(mean, std, labels, vae.scale.item()) if cfg.space == "latent" \
            else LatentDataset(x, None, labels, 1.0)
        steps = int(a.minutes * 60 / seconds_per_step(cfg, data))
        cfg = dataclasses.replace(cfg, unet_steps=steps, warmup_steps=max(1, min(cfg.warmup_steps, steps // 10)))
        unet, hist = train_unet(cfg, data)
        pipe = Pipeline(unet, cfg, vae if cfg.space == "latent" else None)
        classes = [c for c in range(NUM_CLASSES) for _ in range(a.n_per_class)]
        for w in (1.0, DEFAULTS["guidance"]):
            t0 = time.perf_counter()
            s = pipe.generate(classes, guidance=w)
            ips = len(classes) / (time.perf_counter() - t0)
            r = evaluate_samples(s.images, s.labels, judge)
            rows.append({"variant": name, "steps": steps, "train_minutes": round(hist["seconds"] / 60, 1),
                         "params_M": round(sum(p.numel() for p in unet.parameters()) / 1e6, 2),
                         "guidance": w, "images_per_s": round(ips), **r})
            print(json.dumps(rows[-1]), flush=True)
    vae_minutes = read_weights(MODEL_DIR / "vae.safetensors", "vae")[2]["seconds"] / 60
    lines = [f"Measured {datetime.date.today()} on {machine(get_device())} with `python benchmarks/ablations.py {a.what} --minutes {a.minutes}` "
             f"({DEFAULTS['sampler']}, {DEFAULTS['steps']} steps; the shipped VAE took {vae_minutes:.1f} min once).", "",
             "| variant | params (M) | train steps | train min | guidance | FID / real-vs-real | accuracy | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['params_M']} | {r['steps']} | {r['train_minutes']} | {r['guidance']:g} | "
              f"{r['fid_ratio']:.2f} | {r['accuracy']:.3f} | {r['images_per_s']} |" for r in rows]
    (HERE / f"ablation_{a.what}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
