"""DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the probability-flow
ODE, written in lambda = log(alpha / sigma), the log signal-to-noise ratio over two. Good images
in 10-20 steps, where DDIM needs 50 or more: each step reuses the previous step's guess to
correct for how the guess changes along the way."""
from __future__ import annotations

import math

from .base import Sampler


def log_snr_half(abar: float) -> float:
    """lambda_t = log(alpha_t / sigma_t) = 0.5 log(abar_t / (1 - abar_t))."""
    return 0.5 * math.log(abar / (1 - abar))


def dpmpp2m_step(schedule, x, x0, t: int, t_next: int, prev=None):
    """One step of Lu et al. 2022, Algorithm 2. `prev` is (x0, h) of the previous step, or None;
    returns (x_next, (x0, h)) for the next call. The last step, to sigma = 0, is x_next = x0."""
    if t_next < 0:
        return x0, None
    a, a_next = schedule.abar_at(t), schedule.abar_at(t_next)
    h = log_snr_half(a_next) - log_snr_half(a)                  # h = lambda_next - lambda
    if prev is None:
        d = x0                                                  # D = x0_i on the first step
    else:
        r = prev[1] / h                                         # r = h_{i-1} / h_i
        d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * prev[0]      # D = (1 + 1/(2r)) x0_i - 1/(2r) x0_{i-1}
    # x_next = (sigma_next / sigma) x - alpha_next (e^{-h} - 1) D
    x_next = math.sqrt((1 - a_next) / (1 - a)) * x - math.sqrt(a_next) * math.expm1(-h) * d
    return x_next, (x0, h)


class DPMSolverPP2M(Sampler):
    name = "dpmpp2m"

    def __init__(self, schedule, generator=None):
        super().__init__(schedule, generator)
        self.prev = None                                        # (x0, h) of the last step

    def step(self, x, x0, eps, t, t_next):
        x, self.prev = dpmpp2m_step(self.schedule, x, x0, t, t_next, self.prev)
        return x
