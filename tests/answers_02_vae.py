"""Notebook 02's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch

RIGHT = {
    "check_psnr": lambda x, recon: 10 * torch.log10(1 / (((x + 1) / 2 - (recon + 1) / 2) ** 2).mean(dim=(1, 2, 3))),
    "check_kl_per_channel": lambda mean, logvar: (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).sum(dim=(2, 3)).mean(dim=0),
    "check_latent_scale": lambda mean, std, eps: 1 / (mean + std * eps).std(),
}

WRONG = {
    "check_psnr": (lambda x, recon: 10 * torch.log10(1 / ((x - recon) ** 2).mean(dim=(1, 2, 3))), "[0, 1]"),
    "check_kl_per_channel": (lambda mean, logvar: (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).mean(dim=(2, 3)).mean(dim=0),
                             "sum over rows and columns"),
    "check_latent_scale": (lambda mean, std, eps: 1 / mean.std(), "samples"),
}
