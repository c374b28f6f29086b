"""Notebook 07's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import math

import torch


def consistency_sampling(denoise, abar, noise, timesteps):
    z0_hat = denoise(noise[0], timesteps[0])
    for t, eps in zip(timesteps[1:], noise[1:]):
        z_t = math.sqrt(abar(t)) * z0_hat + math.sqrt(1 - abar(t)) * eps
        z0_hat = denoise(z_t, t)
    return z0_hat


def renoised_the_state(denoise, abar, noise, timesteps):
    z_t = noise[0]
    z0_hat = denoise(z_t, timesteps[0])
    for t, eps in zip(timesteps[1:], noise[1:]):
        z_t = math.sqrt(abar(t)) * z_t + math.sqrt(1 - abar(t)) * eps
        z0_hat = denoise(z_t, t)
    return z0_hat


def consistency_gap(denoise, states, timesteps):
    guesses = torch.stack([denoise(states[:, k], t) for k, t in enumerate(timesteps[:-1])], 1)
    return ((guesses[:, 1:] - guesses[:, :-1]) ** 2).mean(dim=(0, 2, 3, 4))


def gap_to_the_end(denoise, states, timesteps):
    guesses = torch.stack([denoise(states[:, k], t) for k, t in enumerate(timesteps[:-1])], 1)
    return ((guesses - states[:, -1:]) ** 2).mean(dim=(0, 2, 3, 4))


RIGHT = {
    "check_consistency_sampling": consistency_sampling,
    "check_v_target": lambda z, a, end: (a.sqrt() * z - end) / (1 - a).sqrt(),
    "check_consistency_gap": consistency_gap,
}

WRONG = {
    "check_consistency_sampling": (renoised_the_state, "guess z0_hat back"),
    "check_v_target": (lambda z, a, end: (end - a.sqrt() * z) / (1 - a).sqrt(), "sign"),
    "check_consistency_gap": (gap_to_the_end, "eq. (1)"),
}
