"""Notebook 06's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch


def _recall(real, fake, k, kth_offset=1):
    radius = torch.cdist(fake, fake).kthvalue(k + kth_offset, dim=1).values    # [M]: each sample's ball
    return (torch.cdist(real, fake) <= radius[None, :]).any(dim=1).float().mean()


def _mmd(real, fake, biased=False):
    d = real.shape[1]
    kernel = lambda a, b: (a @ b.T / d + 1) ** 3
    within = lambda K: K.mean() if biased else (K.sum() - K.diagonal().sum()) / (len(K) * (len(K) - 1))
    return within(kernel(real, real)) + within(kernel(fake, fake)) - 2 * kernel(real, fake).mean()


RIGHT = {
    "check_recall": _recall,
    "check_kid_mmd": _mmd,
}

WRONG = {
    "check_recall": (lambda real, fake, k: _recall(real, fake, k, kth_offset=0), "kthvalue(k + 1)"),
    "check_kid_mmd": (lambda real, fake: _mmd(real, fake, biased=True), "diagonals"),
}
