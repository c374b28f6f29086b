"""Writes tests/data/reference_images.npz: the shipped weights' images for fixed seeds and
inputs, for every sampler and entry point (defaults, DDIM at eta 0 and 1, DDPM, the distilled
student at 1 and 4 steps, a negative class, inpainting, DDIM inversion and back, SDEdit), in
float32 (FMNIST_AMP=fp32) so that the CPU's bf16 path does not enter. It was run once, at commit
b28bca4, before the samplers moved into fmnist_ldm/samplers/; tests/test_same_images.py holds
today's code to those images. Rerun it only when the shipped weights change:

    FMNIST_AMP=fp32 python tests/data/make_reference_images.py
"""
import os
from pathlib import Path

import numpy as np
import torch

from fmnist_ldm.data import load_fashion_mnist, to_model_range
from fmnist_ldm.pipeline import Pipeline

HERE = Path(__file__).resolve().parent
LABELS = [c for c in range(10) for _ in range(2)] + [10, 10]


def reference_images(pipe) -> dict:
    labels, out = LABELS, {}
    out["dpmpp2m_defaults"] = pipe.generate(labels, seed=7).images
    out["ddim_10_eta0"] = pipe.generate(labels, sampler="ddim", steps=10, seed=7).images
    out["ddim_10_eta1"] = pipe.generate(labels, sampler="ddim", steps=10, eta=1.0, seed=7).images
    out["ddpm"] = pipe.generate(labels[:6], sampler="ddpm", seed=7).images
    out["distilled_1"] = pipe.generate(labels, sampler="distilled", steps=1, seed=7).images
    out["distilled_4"] = pipe.generate(labels, sampler="distilled", steps=4, seed=7).images
    out["negative"] = pipe.generate([6] * 6, negative=0, seed=7).images
    x, y = load_fashion_mnist("test")
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[:14] = True
    out["inpaint"] = pipe.inpaint(x[:6], mask, y[:6].tolist(), seed=7).images
    noise = pipe.invert(x[:6], y[:6].tolist(), steps=20)
    out["invert_regenerate"] = pipe.generate(y[:6].tolist(), sampler="ddim", steps=20, guidance=1.0,
                                             x_start=noise).images
    z_t = pipe.schedule.q_sample(pipe.encode(to_model_range(x[:6])), torch.full((6,), 600),
                                 torch.randn(6, 4, 7, 7, generator=torch.Generator().manual_seed(3)))
    out["sdedit"] = pipe.generate(y[:6].tolist(), steps=10, t_start=600, x_start=z_t).images
    return {k: v.numpy() for k, v in out.items()}


if __name__ == "__main__":
    assert os.environ.get("FMNIST_AMP") == "fp32", "run with FMNIST_AMP=fp32"
    np.savez_compressed(HERE / "reference_images.npz", **reference_images(Pipeline.from_pretrained(device="cpu")))
