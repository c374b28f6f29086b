"""Notebook 04's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch

from fmnist_ldm.samplers.ddim import ddim_step


def _ddim(denoise, schedule, x, steps, last=None):
    ts = schedule.timesteps(steps)
    for t, t_next in list(zip(ts[:-1], ts[1:]))[:last]:
        x0_hat, eps_hat = denoise(x, t)
        x = ddim_step(schedule, x, x0_hat, eps_hat, t, t_next, 0.0, None)
    return x


RIGHT = {
    "check_linear_abar": lambda T: torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0),
    "check_ddim_sampler": _ddim,
    "check_min_snr_weight": lambda abar, gamma: (lambda snr: snr.clamp(max=gamma) / (snr + 1))(abar / (1 - abar)),
}

WRONG = {
    "check_linear_abar": (lambda T: 1 - torch.cumsum(torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0), "product"),
    "check_ddim_sampler": (lambda denoise, schedule, x, steps: _ddim(denoise, schedule, x, steps, last=-1), "one step short"),
    "check_min_snr_weight": (lambda abar, gamma: (lambda snr: snr.clamp(max=gamma) / snr)(abar / (1 - abar)), "eps"),
}
