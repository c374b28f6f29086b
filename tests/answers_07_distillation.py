"""Notebook 07's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import math

import torch

RIGHT = {
    "check_renoise": lambda z0, a, noise: math.sqrt(a) * z0 + math.sqrt(1 - a) * noise,
    "check_distill_loss": lambda v, z, a, end: ((a.sqrt() * z - (1 - a).sqrt() * v - end) ** 2).mean(),
}

WRONG = {
    "check_renoise": (lambda z0, a, noise: z0 + math.sqrt(1 - a) * noise, "scaled down"),
    "check_distill_loss": (lambda v, z, a, end: ((v - end) ** 2).mean(), "outputs v"),
}
