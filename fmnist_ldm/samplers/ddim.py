"""DDIM (Song et al. 2021): any subset of timesteps; eta = 0 is deterministic, and then the run
can also be read backwards, from an image to the noise that draws it (inversion)."""
from __future__ import annotations

import math

import torch

from ..diffusion import noise_like
from .base import Sampler


def ddim_step(schedule, x, x0, eps, t: int, t_next: int, eta: float = 0.0, generator=None):
    """Song et al. 2021 eq. 12, from t to t_next (abar' = abar_{t_next}):"""
    a, a_next = schedule.abar_at(t), schedule.abar_at(t_next)
    # s = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar'): the noise added back
    s = eta * math.sqrt((1 - a_next) / (1 - a) * (1 - a / a_next))
    # x_next = sqrt(abar') x0 + sqrt(1 - abar' - s^2) eps + s z
    x_next = math.sqrt(a_next) * x0 + math.sqrt(max(1 - a_next - s * s, 0.0)) * eps
    return x_next + s * noise_like(x, generator) if s > 0 else x_next


class DDIM(Sampler):
    """eta = 0: deterministic; eta = 1: as much fresh noise per step as DDPM."""

    name = "ddim"
    options = ("eta",)

    def __init__(self, schedule, generator=None, eta: float = 0.0):
        super().__init__(schedule, generator)
        self.eta = eta

    def step(self, x, x0, eps, t, t_next):
        return ddim_step(self.schedule, x, x0, eps, t, t_next, self.eta, self.generator)


def ddim_invert_step(x, eps, abar: float, abar_next: float):
    """One step of DDIM inversion: from x at the level abar to the noisier level abar_next
    (abar_next < abar), with the model's noise guess eps held fixed."""
    x0_hat = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)          # x = sqrt(abar) x0 + sqrt(1 - abar) eps, solved
    return math.sqrt(abar_next) * x0_hat + math.sqrt(1 - abar_next) * eps  # the DDIM step, to the noisier level


@torch.no_grad()
def ddim_invert(denoise, schedule, x0, steps: int = 50, t_end: int | None = None):
    """Deterministic DDIM run backwards, from a clean x0 up to t_end (default T-1), so that DDIM
    with the same steps from the result returns x0 (Song et al. 2021, sec. 4.3; Dhariwal & Nichol
    2021, app. F). Each step takes eps_hat at the next, noisier timestep t' (the model is not
    defined at t = -1, and the state changes little in one step): the approximation that makes
    inversion inexact, less so the more steps. Returns the state at t_end."""
    ts = schedule.timesteps(steps, t_end)[::-1]           # -1, then up to t_end
    x = x0
    for t, t_next in zip(ts[:-1], ts[1:]):
        _, eps = denoise(x, t_next)
        x = ddim_invert_step(x, eps, schedule.abar_at(t), schedule.abar_at(t_next))
    return x
