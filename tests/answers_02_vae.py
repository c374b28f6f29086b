"""Notebook 02's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch

RIGHT = {
    "check_reparameterize": lambda mean, logvar, eps: mean + torch.exp(0.5 * logvar) * eps,
    "check_kl": lambda mean, logvar: (0.5 * (mean**2 + logvar.exp() - 1 - logvar)).sum((1, 2, 3)).mean(),
}

WRONG = {
    "check_reparameterize": (lambda mean, logvar, eps: mean + logvar.exp() * eps, "exp(logvar / 2)"),
    "check_kl": (lambda mean, logvar: (mean**2 + logvar.exp() - 1 - logvar).sum((1, 2, 3)).mean(), "1/2"),
}
