"""Exercises of notebook 02 (the autoencoder): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import torch

from .grading import gen, grade

__all__ = ["check_reparameterize", "check_kl"]


def check_reparameterize(fn) -> bool:
    """fn(mean, logvar, eps) -> z = mean + sigma * eps, sigma = exp(logvar / 2)."""
    g = gen(2)
    mean, logvar, eps = (torch.randn(3, 4, 7, 7, generator=g) for _ in range(3))
    return grade("reparameterisation", lambda: fn(mean.clone(), logvar.clone(), eps.clone()),
                  mean + torch.exp(0.5 * logvar) * eps, [
        (mean + torch.exp(logvar) * eps, "exp(logvar) is the variance sigma²; scale eps by sigma = exp(logvar / 2)."),
        (mean + logvar * eps, "logvar is log sigma², not sigma: sigma = exp(logvar / 2)."),
        (mean + torch.exp(-0.5 * logvar) * eps, "exp(-logvar / 2) is 1 / sigma: the sign in the exponent is flipped."),
        (mean + torch.exp(0.5 * logvar), "the noise is missing: z = mean + sigma * eps."),
        (torch.exp(0.5 * logvar) * eps, "the mean is missing: z = mean + sigma * eps."),
    ])


def check_kl(fn) -> bool:
    """fn(mean, logvar) -> KL(N(mean, exp(logvar)) || N(0, I)), summed over latent entries,
    averaged over the batch: the VAE's KL term (vae.VAE.kl)."""
    from ..vae import VAE
    g = gen(3)
    mean, logvar = torch.randn(6, 4, 7, 7, generator=g), 0.5 * torch.randn(6, 4, 7, 7, generator=g)
    per_entry = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)
    return grade("KL term", lambda: fn(mean.clone(), logvar.clone()), VAE.kl(mean, logvar), [
        (2 * per_entry.flatten(1).sum(1).mean(), "twice the KL: the 1/2 in front is missing."),
        (per_entry.mean(), "averaged over every entry: sum over the latent entries of an image, average over images."),
        (per_entry.sum(), "summed over the batch too: average over images (.mean() after the per-image sum)."),
        (0.5 * (mean.pow(2) + logvar.exp() - 1 + logvar).flatten(1).sum(1).mean(), "the sign of log sigma² is flipped: ... - 1 - logvar."),
        (0.5 * (mean.pow(2) + logvar - 1 - logvar.exp()).flatten(1).sum(1).mean(), "logvar and exp(logvar) are swapped: sigma² = exp(logvar)."),
    ])
