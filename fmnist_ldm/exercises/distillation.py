"""Exercises of notebook 07 (distillation): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import math

import torch

from ..diffusion import NoiseSchedule
from .grading import gen, grade

__all__ = ["check_renoise", "check_distill_loss"]


def check_renoise(fn) -> bool:
    """fn(z0_hat, abar_t, noise) -> sqrt(abar_t) z0_hat + sqrt(1 - abar_t) noise: the multistep
    consistency sampler's way back up to timestep t (Song et al. 2023, Algorithm 1; distill.py eq. 2)."""
    from ..sampling import consistency_sample
    sched = NoiseSchedule("cosine", 1000)
    g = gen(11)
    z0, noise = torch.randn(2, 4, 7, 7, generator=g), torch.randn(2, 4, 7, 7, generator=g)
    a = sched.abar_at(499)
    # the library's sampler, asked for two steps whose first guess is z0: its second state is the re-noised z0
    _, run = consistency_sample(lambda x, t: (z0, None), sched, torch.zeros_like(z0), [999, 499],
                                lambda like: noise, return_trajectory=True)
    return grade("re-noising", lambda: fn(z0.clone(), a, noise.clone()), run["x"][1], [
        (a * z0 + (1 - a) * noise, "the square roots are missing: sqrt(abar_t) z0 + sqrt(1 - abar_t) noise."),
        (math.sqrt(a) * noise + math.sqrt(1 - a) * z0, "z0 and the noise are swapped: the guess gets sqrt(abar_t)."),
        (z0 + math.sqrt(1 - a) * noise, "the guess must be scaled down too, by sqrt(abar_t), so that z_t has unit variance."),
    ])


def check_distill_loss(fn) -> bool:
    """fn(v_student, z_t, abar_t, z_end) -> mean squared error between the student's z0, from its v
    output (z0 = sqrt(abar) z_t - sqrt(1 - abar) v), and where the teacher's run ended (distill.py eq. 1)."""
    g = gen(12)
    v, z, end = (torch.randn(3, 4, 7, 7, generator=g) for _ in range(3))
    a = torch.tensor([0.05, 0.4, 0.9]).view(-1, 1, 1, 1)
    z0 = a.sqrt() * z - (1 - a).sqrt() * v
    mse = lambda x: (x - end).pow(2).mean()
    return grade("distillation loss", lambda: fn(v.clone(), z.clone(), a.clone(), end.clone()), mse(z0), [
        (mse(v), "the student outputs v, not z0: turn it into z0 = sqrt(abar) z_t - sqrt(1 - abar) v first."),
        (mse((1 - a).sqrt() * z + a.sqrt() * v), "that is eps from v; the teacher's end point is a clean z0."),
        ((z0 - end).pow(2).sum(), "average the squared error (mean), do not sum it."),
        (mse(a * z - (1 - a) * v), "the square roots are missing: sqrt(abar) z_t - sqrt(1 - abar) v."),
    ])
