"""Exercises of notebook 02 (the autoencoder): one `check_<name>(student_fn)` each.

The inputs are [5, 3, 6, 7] (images, channels, rows, columns: every axis a different size), so a
sum or mean over the wrong axis gives a wrong shape or wrong values, never the right ones by luck."""
from __future__ import annotations

import torch

from .grading import Verdict, gen, grade

__all__ = ["check_psnr", "check_kl_per_channel", "check_latent_scale"]

SHAPE = (5, 3, 6, 7)          # images, channels, rows, columns


def check_psnr(fn) -> Verdict:
    """fn(images, reconstructions), both [N, C, H, W] in the model's range [-1, 1] -> [N]: each
    image's PSNR in dB on pixels in [0, 1], PSNR = 10 log10(1 / MSE), the MSE over that image's
    pixels (metrics.reconstruction_metrics computes the same over a whole test set)."""
    g = gen(4)
    x = torch.rand(SHAPE, generator=g) * 2 - 1
    noise = torch.randn(SHAPE, generator=g) * torch.tensor([0.02, 0.05, 0.1, 0.2, 0.4])[:, None, None, None]
    recon = (x + noise).clamp(-1, 1)

    def psnr(mse):                                   # 10 log10(peak^2 / MSE), peak 1
        return 10 * torch.log10(1 / mse)

    sq01 = ((x - recon) / 2).pow(2)                  # squared error of pixels in [0, 1]: (x + 1)/2 - (r + 1)/2
    per_image = sq01.mean((1, 2, 3))
    return grade("PSNR per image", lambda: fn(x.clone(), recon.clone()), psnr(per_image), [
        (psnr((x - recon).pow(2).mean((1, 2, 3))),
         "that is PSNR with pixels in [-1, 1] (6 dB too low: their squared errors are 4 times larger): bring both to [0, 1] first, (x + 1) / 2."),
        (2 * psnr(per_image), "20·log10 is for ratios of amplitudes; the MSE is already squared: 10·log10(1 / MSE)."),
        (torch.log(1 / per_image) * 10, "torch.log is the natural log: decibels use log10."),
        (psnr(per_image.sqrt()), "that is 10·log10(1 / RMSE): use the mean squared error, not its root."),
        (psnr(sq01.mean()), "one number for the whole batch: average the squared error over each image's "
                            "channels, rows and columns, one PSNR per image."),
        (psnr(sq01.mean()).expand(SHAPE[0]), "every image got the batch's PSNR: average the squared error "
                                             "over each image's channels, rows and columns only."),
        (psnr(sq01.mean((2, 3))), "one PSNR per image and channel: average over the channels too, dims (1, 2, 3)."),
        (psnr(sq01.mean((0, 2, 3))), "one PSNR per channel: average over the channels, rows and columns of each image, dims (1, 2, 3)."),
    ], axes=("image",))


def check_kl_per_channel(fn) -> Verdict:
    """fn(mean, logvar), [N, C, H, W] -> [C]: each latent channel's KL to N(0, 1), summed over its
    H x W entries, averaged over the images (vae.kl_per_channel). Channel 1 of the inputs is left
    almost at the prior, as an encoder leaves a channel it does not use."""
    from ...vae import kl_per_channel, kl_per_entry
    g = gen(5)
    use = torch.tensor([1.0, 0.05, 0.6])[None, :, None, None]      # channel 1: close to N(0, 1)
    mean = torch.randn(SHAPE, generator=g) * use
    logvar = torch.randn(SHAPE, generator=g) * use - 2 * use
    entry = kl_per_entry(mean, logvar)
    return grade("KL per channel", lambda: fn(mean.clone(), logvar.clone()), kl_per_channel(mean, logvar), [
        (2 * entry.sum((2, 3)).mean(0), "twice the KL: the 1/2 in front is missing."),
        (entry.mean((2, 3)).mean(0), "averaged over the rows and columns: a channel carries the sum of "
                                     "its entries' KL, so sum over rows and columns, average over images."),
        (entry.sum((2, 3)).sum(0), "summed over the images too: sum over rows and columns, then average over images."),
        (entry.sum((1, 2, 3)).mean(), "that is the KL per image (VAE.kl): keep the channel axis, sum over rows and columns only."),
        (entry.sum((1, 2, 3)), "one number per image: keep the channel axis and average over the images instead."),
        (entry.sum((2, 3)), "one number per image and channel: average over the images (dim 0)."),
        (entry.mean((2, 3)).sum(0),
         "the images were summed and the rows and columns averaged: the other way round."),
        (kl_per_channel(mean, logvar.exp()), "logvar is log sigma², not sigma²: sigma² = exp(logvar)."),
        (0.5 * (mean.pow(2) + logvar.exp() - 1 + logvar).sum((2, 3)).mean(0),
         "the sign of log sigma² is flipped: ... - 1 - logvar."),
    ], axes=("channel",))


def check_latent_scale(fn) -> Verdict:
    """fn(mean, std, eps), each [N, C, H, W] -> one number s: 1 / the standard deviation of the
    posterior samples z = mean + std * eps over all their entries (vae.latent_scale)."""
    from ...vae import latent_scale
    g = gen(6)
    mean = torch.randn(SHAPE, generator=g) * torch.tensor([0.8, 1.5, 0.4])[None, :, None, None] + 0.3
    std = 0.2 + torch.rand(SHAPE, generator=g)                  # sigma between 0.2 and 1.2
    eps = torch.randn(SHAPE, generator=g)
    z = mean + std * eps
    return grade("latent scale", lambda: fn(mean.clone(), std.clone(), eps.clone()), latent_scale(mean, std, eps), [
        (1 / mean.std(), "the diffusion model sees samples z = mean + std * eps, not the means: "
                         "measure the standard deviation of the samples."),
        (1 / (mean + std).std(), "the noise is missing: the samples are z = mean + std * eps."),
        (1 / (mean + std.pow(2) * eps).std(), "std is sigma already: z = mean + std * eps, not std²."),
        (z.std(), "that is std(z) itself: the scale s multiplies z so that s * z has std 1, s = 1 / std(z)."),
        (1 / z.var(), "1 / variance: s * z has std s * std(z), so s = 1 / std(z), the standard deviation."),
        (1 / z.std((0, 2, 3)), "one scale per channel: the course uses one number for the whole latent, "
                               "the std over all entries."),
        (1 / z.std((1, 2, 3)), "one scale per image: use one number, the std over all entries of all images."),
        (1 / z.abs().max(), "1 / the largest value is a range, not a spread: use the standard deviation."),
    ], rtol=2e-3, atol=1e-6)
