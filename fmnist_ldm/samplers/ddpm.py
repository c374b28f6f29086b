"""DDPM's ancestral sampler (Ho et al. 2020): every timestep, each a draw from the posterior."""
from __future__ import annotations

import math

from ..diffusion import noise_like
from .base import Sampler


def ddpm_step(schedule, x, x0, t: int, generator=None):
    """Ancestral step t -> t-1 (Ho et al. eq. 6-7): a draw from q(x_{t-1} | x_t, x0_hat)."""
    a, a_prev = schedule.abar_at(t), schedule.abar_at(t - 1)
    beta = float(schedule.betas[t])
    # mean = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) x_t
    mean = (math.sqrt(a_prev) * beta * x0 + math.sqrt(1 - beta) * (1 - a_prev) * x) / (1 - a)
    # variance beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); none on the last step
    var = beta * (1 - a_prev) / (1 - a)
    return mean + math.sqrt(var) * noise_like(x, generator) if t > 0 else mean


class DDPM(Sampler):
    """Takes every timestep from t_start (default T-1) down, whatever `steps` says."""

    name = "ddpm"

    def step_range(self, t_start=None):
        return super().step_range()          # checked as for the others, though it takes every timestep

    def timesteps(self, steps, t_start=None):
        t_start = self.schedule.T - 1 if t_start is None else t_start
        return self.schedule.timesteps(t_start + 1, t_start)

    def step(self, x, x0, eps, t, t_next):
        return ddpm_step(self.schedule, x, x0, t, self.generator)
