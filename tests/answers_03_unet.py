"""Notebook 03's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import math

import torch

RIGHT = {
    "check_timestep_embedding": lambda t, dim: (lambda a: torch.cat([a.cos(), a.sin()], -1))(
        t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(dim // 2) / (dim // 2))),
    "check_attention": lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v,
}

WRONG = {
    "check_timestep_embedding": (lambda t, dim: (lambda a: torch.cat([a.sin(), a.cos()], -1))(
        t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(dim // 2) / (dim // 2))), "swapped"),
    "check_attention": (lambda q, k, v: torch.softmax(q @ k.transpose(-1, -2), -1) @ v, "sqrt(d)"),
}
