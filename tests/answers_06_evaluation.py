"""Notebook 06's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch

RIGHT = {
    "check_frechet_distance": lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum() + torch.trace(s1 + s2)
    - 2 * torch.linalg.eigvals(s1 @ s2).sqrt().real.sum(),
    "check_precision": lambda real, fake, k: (torch.cdist(fake, real) <= torch.cdist(real, real).kthvalue(k + 1, 1).values).any(1).float().mean(),
}

WRONG = {
    "check_frechet_distance": (lambda m1, s1, m2, s2: ((m1 - m2) ** 2).sum() + torch.trace(s1 + s2)
                               - torch.linalg.eigvals(s1 @ s2).sqrt().real.sum(), "twice"),
    "check_precision": (lambda real, fake, k: (torch.cdist(fake, real) <= torch.cdist(real, real).kthvalue(k, 1).values).any(1).float().mean(), "kthvalue(k + 1)"),
}
