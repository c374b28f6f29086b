"""Notebook 01's exercises, answered: right answers written as a student would (the
solution cells hold the same), and one typical mistake each with a word its hint must contain."""
import torch

RIGHT = {
    "check_to_model_range": lambda x: (x.float() / 127.5 - 1).unsqueeze(1),
    "check_class_means": lambda x, y: torch.stack([x[y == c].float().mean(0) for c in range(10)]),
}

WRONG = {
    "check_to_model_range": (lambda x: (x.float() / 255).unsqueeze(1), "[-1, 1]"),
    "check_class_means": (lambda x, y: torch.stack([x.float().mean(0)] * 10), "images[labels == c]"),
}
