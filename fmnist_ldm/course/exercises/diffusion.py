"""Exercises of notebook 04 (diffusion): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import torch

from ...diffusion import NoiseSchedule, min_snr_weight
from ...samplers.ddim import ddim_step
from ...sampling import sample
from .grading import Verdict, gen, grade

__all__ = ["check_linear_abar", "check_ddim_sampler", "check_min_snr_weight"]


def check_linear_abar(fn) -> Verdict:
    """fn(T) -> abar_t for t = 0..T-1 of Ho et al.'s linear schedule: beta_t = linspace(1e-4, 0.02, T),
    abar_t = prod_{s <= t} (1 - beta_s). Graded at T = 1000 (the notebook's) and T = 37."""
    def run():
        first = fn(1000)
        return None if first is None else (first, fn(37))      # None: "you returned None"

    expected, wrong = [], {k: [] for k in ("shifted", "betas", "sum", "ends", "no_cumprod")}
    for T in (1000, 37):
        betas = NoiseSchedule("linear", T).betas
        expected.append(NoiseSchedule("linear", T).alphas_cumprod)
        wrong["shifted"].append(torch.cat([betas.new_ones(1), torch.cumprod(1 - betas, 0)[:-1]]))
        wrong["betas"].append(torch.cumprod(betas, 0))
        wrong["sum"].append(1 - torch.cumsum(betas, 0))
        wrong["ends"].append(torch.cumprod(1 - torch.linspace(1e-4, 0.02, T + 1, dtype=torch.float64)[1:], 0))
        wrong["no_cumprod"].append(1 - betas)
    return grade("linear schedule", run, tuple(expected), [
        (tuple(wrong["shifted"]), "off by one step: abar_0 already includes the first step, 1 - beta_0 (a cumprod, not shifted)."),
        (tuple(wrong["betas"]), "the product is over 1 - beta_s, the share of the variance each step keeps, not beta_s."),
        (tuple(wrong["sum"]), "1 - (sum of the betas) is only the first-order approximation: abar is a product, prod (1 - beta_s)."),
        (tuple(wrong["ends"]), "the ends: beta is 1e-4 at the first step and 0.02 at the last, T values in all (torch.linspace(1e-4, 0.02, T))."),
        (tuple(wrong["no_cumprod"]), "that is alpha_t = 1 - beta_t of one step; abar_t is the running product up to t (torch.cumprod)."),
    ], rtol=1e-4, atol=1e-7, axes=("timestep",))


def _toy_denoiser(schedule):
    """A stand-in network, deterministic and t-dependent: denoise(x, t) -> (x0_hat, eps_hat)."""
    def denoise(x, t):
        tt = torch.full((len(x),), t)
        v_hat = 0.6 * x.tanh() + 0.2 * (t / schedule.T) * x.flip(-1)       # some 'network output'
        return schedule.split(v_hat, x, tt, "v")
    return denoise


def _ddim_by(schedule, denoise, x, ts, at_next=False, swap=False):
    """DDIM (eta = 0) over the pairs of ts, for the checker's mistakes."""
    for t, t_next in zip(ts[:-1], ts[1:]):
        x0, eps = denoise(x, max(t_next, 0) if at_next else t)
        x = ddim_step(schedule, x, x0, eps, *((t_next, t) if swap else (t, t_next)), 0.0, None)
    return x


def check_ddim_sampler(fn) -> Verdict:
    """fn(denoise, schedule, x, steps) -> clean x after DDIM with eta = 0 over schedule.timesteps(steps)
    (the library's sample(..., sampler="ddim", eta=0))."""
    schedule, steps = NoiseSchedule("cosine", 1000), 7
    denoise = _toy_denoiser(schedule)
    x = torch.randn(5, 3, 6, 7, generator=gen(11))
    expected = sample(denoise, schedule, x, sampler="ddim", steps=steps, eta=0.0)
    ts = schedule.timesteps(steps)
    leading = [int(round(v)) for v in torch.linspace(schedule.T - 1, 0, steps).tolist()] + [-1]
    return grade("DDIM sampler", lambda: fn(denoise, schedule, x.clone(), steps), expected, [
        (_ddim_by(schedule, denoise, x, ts[:-1]), "one step short: the last step goes from the last timestep to -1 "
         "(clean); loop over every pair (t, t_next) of schedule.timesteps(steps), -1 included."),
        (_ddim_by(schedule, denoise, x, ts, at_next=True), "the network is asked at the wrong timestep: denoise(x, t) "
         "at the t that x is at now, then step to t_next."),
        (_ddim_by(schedule, denoise, x, leading), "other timesteps: use schedule.timesteps(steps), which the "
         "library's samplers use (and which ends with -1, clean)."),
        (denoise(x, schedule.T - 1)[0], "that is the first step's guess x0_hat: each step goes only to the next "
         "timestep, and the network guesses again there."),
    ], axes=("image", "channel", "row", "column"))


def check_min_snr_weight(fn) -> Verdict:
    """fn(abar_t [N], gamma) -> min(SNR_t, gamma) / (SNR_t + 1), SNR_t = abar_t / (1 - abar_t): the factor
    on each example's v-MSE that makes its weight on |x0 - x0_hat|^2 min(SNR_t, gamma)."""
    schedule, gamma = NoiseSchedule("cosine", 1000), 5.0
    t = torch.tensor([0, 3, 20, 90, 200, 350, 500, 640, 800, 930, 999])
    abar = schedule.alphas_cumprod[t]
    snr = abar / (1 - abar)
    expected = min_snr_weight(snr, gamma, "v")
    return grade("Min-SNR weight", lambda: fn(abar.clone(), gamma), expected, [
        (snr.clamp(max=gamma), "that is the weight wanted on |z0 - z0_hat|^2; the v-MSE already carries SNR_t + 1 "
         "of it, so divide by SNR_t + 1."),
        (snr.clamp(max=gamma) / snr, "that is the factor for an eps-MSE (weight SNR_t); the v-MSE weighs "
         "|z0 - z0_hat|^2 by SNR_t + 1."),
        (snr.clamp(min=gamma) / (snr + 1), "clamped from below: min(SNR_t, gamma) caps the SNR (clamp(max=gamma))."),
        (torch.minimum(snr + 1, torch.tensor(gamma, dtype=snr.dtype)) / (snr + 1),
         "min(SNR_t, gamma), not min(SNR_t + 1, gamma): the cap is on the SNR itself."),
        ((abar.sqrt() / (1 - abar).sqrt()).clamp(max=gamma) / (abar.sqrt() / (1 - abar).sqrt() + 1),
         "SNR_t is abar_t / (1 - abar_t), a ratio of variances, without square roots."),
    ], axes=("example",))
