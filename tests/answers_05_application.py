"""Notebook 05's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import math

import torch

RIGHT = {
    "check_interval_guidance": lambda c, u, t, w, interval: torch.where(
        ((t >= interval[0]) & (t <= interval[1])).view(-1, 1, 1, 1), u + w * (c - u), c),
    "check_majority_cells": lambda m: (m[:, None].float().unflatten(2, (m.shape[1] // 4, 4))
                                       .unflatten(4, (m.shape[2] // 4, 4)).mean((3, 5)) > 0.5).float(),
    "check_ddim_invert_step": lambda x, eps, a, an: math.sqrt(an) * (x - math.sqrt(1 - a) * eps) / math.sqrt(a)
                                                      + math.sqrt(1 - an) * eps,
}

WRONG = {
    "check_interval_guidance": (lambda c, u, t, w, interval: torch.where(
        ((t > interval[0]) & (t < interval[1])).view(-1, 1, 1, 1), u + w * (c - u), c), "ends"),
    "check_majority_cells": (lambda m: torch.nn.functional.max_pool2d(m[:, None].float(), 4), "any pixel"),
    "check_ddim_invert_step": (lambda x, eps, a, an: math.sqrt(an) * x + math.sqrt(1 - an) * eps, "clean guess"),
}
