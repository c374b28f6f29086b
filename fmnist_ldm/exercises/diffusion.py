"""Exercises of notebook 04 (diffusion): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import math

import torch

from ..diffusion import NoiseSchedule
from .grading import gen, grade

__all__ = ["check_cosine_abar", "check_q_sample", "check_v_to_x0_eps"]


def check_cosine_abar(fn) -> bool:
    """fn(T) -> abar_t for t = 0..T-1 of the cosine schedule (Nichol & Dhariwal 2021, eq. 17):
    abar_t = f(t + 1) / f(0), f(t) = cos((t / T + s) / (1 + s) * pi / 2)^2, s = 0.008
    (t = 0 is the first noising step, so it already has abar < 1)."""
    T = 1000
    ref = NoiseSchedule("cosine", T).alphas_cumprod
    f = lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    t = torch.arange(T, dtype=torch.float64)
    return grade("cosine schedule", lambda: fn(T), ref, [
        (f(t) / f(torch.tensor(0.0)), "off by one step: abar at t = 0 is f(1) / f(0), after the first noising step (use t + 1)."),
        (f(t + 1), "not normalised: divide by f(0), so that abar starts just below 1."),
        (torch.cos((t + 1) / T * math.pi / 2) ** 2, "the offset s = 0.008 is missing (it keeps the first betas from being tiny)."),
        (torch.cos(((t + 1) / T + 0.008) / 1.008 * math.pi / 2) / math.cos(0.008 / 1.008 * math.pi / 2),
         "the cosine is not squared."),
    ], rtol=1e-4, atol=1e-6)


def check_q_sample(fn) -> bool:
    """fn(x0, t [N] int, noise, abar [T]) -> x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise,
    abar_t picked per image and broadcast over its C x H x W."""
    sched = NoiseSchedule("cosine", 1000)
    g = gen(5)
    x0, noise = torch.randn(4, 4, 7, 7, generator=g), torch.randn(4, 4, 7, 7, generator=g)
    t = torch.tensor([0, 300, 700, 999])
    a = sched.abar(t, x0)                                   # abar_t per image, [4, 1, 1, 1]
    return grade("q_sample", lambda: fn(x0.clone(), t.clone(), noise.clone(), sched.alphas_cumprod.float().clone()),
                  sched.q_sample(x0, t, noise), [
        (a * x0 + (1 - a) * noise, "the square roots are missing: sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."),
        (a.sqrt() * noise + (1 - a).sqrt() * x0, "x0 and the noise are swapped: the signal gets sqrt(abar_t)."),
        (a.sqrt() * x0 + a.sqrt() * noise, "the noise is scaled by sqrt(1 - abar_t), not sqrt(abar_t)."),
    ])


def check_v_to_x0_eps(fn) -> bool:
    """fn(v, x_t, abar_t) -> (x0, eps) with alpha = sqrt(abar_t), sigma = sqrt(1 - abar_t):
    x0 = alpha x_t - sigma v, eps = sigma x_t + alpha v (invert v = alpha eps - sigma x0)."""
    sched = NoiseSchedule("cosine", 1000)
    g = gen(6)
    v, x_t = torch.randn(4, 4, 7, 7, generator=g), torch.randn(4, 4, 7, 7, generator=g)
    t = torch.tensor([10, 300, 700, 990])
    a = sched.abar(t, v)
    al, si = a.sqrt(), (1 - a).sqrt()
    return grade("v -> (x0, eps)", lambda: fn(v.clone(), x_t.clone(), a.clone()), sched.split(v, x_t, t, "v"), [
        ((si * x_t + al * v, al * x_t - si * v), "x0 and eps are swapped: return (x0, eps)."),
        ((al * x_t + si * v, si * x_t - al * v), "the signs of the v terms are flipped: x0 = alpha x_t - sigma v."),
        ((a * x_t - (1 - a) * v, (1 - a) * x_t + a * v), "use alpha = sqrt(abar_t) and sigma = sqrt(1 - abar_t), not abar_t itself."),
    ])
