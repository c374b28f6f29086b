"""Notebook 04's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import math

import torch

RIGHT = {
    "check_cosine_abar": lambda T: (lambda f: f(torch.arange(1, T + 1)) / f(torch.tensor(0)))(
        lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2),
    "check_q_sample": lambda x0, t, noise, abar: (lambda a: a.sqrt() * x0 + (1 - a).sqrt() * noise)(abar[t].view(-1, 1, 1, 1)),
    "check_v_to_x0_eps": lambda v, x, a: (a.sqrt() * x - (1 - a).sqrt() * v, (1 - a).sqrt() * x + a.sqrt() * v),
}

WRONG = {
    "check_cosine_abar": (lambda T: (lambda f: f(torch.arange(T)) / f(torch.tensor(0)))(
        lambda t: torch.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2), "off by one"),
    "check_q_sample": (lambda x0, t, noise, abar: (lambda a: a * x0 + (1 - a) * noise)(abar[t].view(-1, 1, 1, 1)), "square roots"),
    "check_v_to_x0_eps": (lambda v, x, a: ((1 - a).sqrt() * x + a.sqrt() * v, a.sqrt() * x - (1 - a).sqrt() * v), "swapped"),
}
