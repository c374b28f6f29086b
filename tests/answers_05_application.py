"""Notebook 05's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import math

import torch

RIGHT = {
    "check_cfg": lambda u, c, w: u + w * (c - u),
    "check_ddim_step": lambda x0, eps, an: math.sqrt(an) * x0 + math.sqrt(1 - an) * eps,
    "check_majority_cells": lambda m: (m[:, None].float().unflatten(2, (7, 4)).unflatten(4, (7, 4)).mean((3, 5)) > 0.5).float(),
}

WRONG = {
    "check_cfg": (lambda u, c, w: c + w * (c - u), "unconditional"),
    "check_ddim_step": (lambda x0, eps, an: an * x0 + (1 - an) * eps, "square roots"),
    "check_majority_cells": (lambda m: torch.nn.functional.max_pool2d(m[:, None].float(), 4), "any pixel"),
}
