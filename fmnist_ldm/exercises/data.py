"""Exercises of notebook 01 (Fashion-MNIST): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import torch

from .grading import gen, grade

__all__ = ["check_to_model_range", "check_class_means"]


def check_to_model_range(fn) -> bool:
    """fn(images_uint8 [N,28,28]) -> float [N,1,28,28] in [-1, 1] (0 -> -1, 255 -> 1)."""
    from ..data import to_model_range
    x = torch.randint(0, 256, (5, 28, 28), generator=gen(), dtype=torch.uint8)
    x[0, 0, 0], x[0, 0, 1] = 0, 255
    f = x.float()
    return grade("to_model_range", lambda: fn(x.clone()), to_model_range(x), [
        ((f / 255)[:, None], "that is [0, 1]; the models see [-1, 1]: x / 127.5 - 1."),
        ((f / 127.5 - 1), "the values are right, but the models take a channel axis: [N, 1, 28, 28] (unsqueeze(1))."),
        ((1 - f / 127.5)[:, None], "the sign is flipped: 0 must map to -1 and 255 to +1."),
    ])


def check_class_means(fn) -> bool:
    """fn(images_uint8 [N,28,28], labels [N]) -> float [10,28,28], the mean image of each class."""
    g = gen(1)
    x = torch.randint(0, 256, (200, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(200) % 10
    expected = torch.stack([x[y == c].float().mean(0) for c in range(10)])
    return grade("class means", lambda: fn(x.clone(), y.clone()), expected, [
        (expected / 255, "scaled to [0, 1]: keep the pixel values 0..255, as the images are."),
        (x.float().mean(0).expand(10, 28, 28), "every class got the mean of all images: select each class with images[labels == c]."),
    ])
