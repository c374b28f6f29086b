"""Exercises of notebook 01 (Fashion-MNIST): one `check_<name>(student_fn)` each.

The inputs are small and differ in size on every axis (images, classes, rows, columns), so that
a sum over the wrong axis or a lucky broadcast cannot pass."""
from __future__ import annotations

import torch

from .grading import Verdict, gen, grade

__all__ = ["check_class_spread", "check_nearest_mean"]


def _labelled_images(seed: int, n: int = 47, num_classes: int = 4, rows: int = 6, cols: int = 9):
    """uint8 images [n, rows, cols] and labels [n] in 0..num_classes-1, every class at least 3 times."""
    g = gen(seed)
    images = torch.randint(0, 256, (n, rows, cols), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % num_classes
    return images, labels[torch.randperm(n, generator=g)]


def check_class_spread(fn) -> Verdict:
    """fn(images uint8 [N,H,W], labels [N], num_classes) -> float [K,H,W]: per class, each pixel's
    standard deviation over the images of that class (torch's std: divided by n_c - 1)."""
    from ...data import class_spread
    images, labels = _labelled_images(1)
    k, x = 4, images.float()
    per_class = [x[labels == c] for c in range(k)]
    return grade("class spread", lambda: fn(images.clone(), labels.clone(), k), class_spread(images, labels, k), [
        (torch.stack([p.std(0, correction=0) for p in per_class]),
         "that divides by n_c (correction=0); torch's std(0) divides by n_c - 1, as the library does."),
        (torch.stack([p.var(0) for p in per_class]),
         "that is the variance, in pixel levels squared: the spread is its square root (std)."),
        (x.std(0).expand(k, *x.shape[1:]),
         "every class got the spread of all the images: select each class with images[labels == c]."),
        (torch.stack([p.std() for p in per_class]),
         "one number per class: the spread is wanted pixel by pixel, an image [K, H, W] (std over the images axis, 0)."),
        (torch.stack([p.std(0) for p in per_class]) / 255,
         "scaled to [0, 1]: keep the pixel levels 0..255, as the images are."),
        (torch.stack([(p - x.mean(0)).pow(2).sum(0).div(len(p) - 1).sqrt() for p in per_class]),
         "measured around the mean of all the images: the spread of a class is around its own mean."),
    ], axes=("class", "row", "column"))


def check_nearest_mean(fn) -> Verdict:
    """fn(images uint8 [N,H,W], means float [K,H,W]) -> int64 [N]: for each image, the index of the
    mean image closest to it in Euclidean distance (sum of squared pixel differences)."""
    from ...data import nearest_mean
    g = gen(2)
    images = torch.randint(0, 256, (13, 6, 7), generator=g, dtype=torch.uint8)
    means = torch.rand(5, 6, 7, generator=g) * 255 * torch.rand(5, 1, 1, generator=g)   # bright and dark means
    x, m = images.flatten(1).float(), means.flatten(1)
    squared = (x[:, None] - m[None]).pow(2).sum(-1)                                        # [N, K]
    return grade("nearest mean", lambda: fn(images.clone(), means.clone()), nearest_mean(images, means), [
        (squared.argmax(1), "that is the farthest mean (argmax): the class is the closest one, argmin."),
        ((x @ m.T).argmax(1), "the largest dot product x · mean favours bright means; compare distances "
                              "|x - mean|^2 = |x|^2 - 2 x · mean + |mean|^2, whose |mean|^2 the dot product leaves out."),
        ((x[:, None] - m[None]).abs().sum(-1).argmin(1),
         "that is the sum of absolute differences (L1); the Euclidean distance sums squared differences."),
        (squared.argmin(0), "one index per mean: take the argmin over the means axis (1 of [N, K]), one class per image."),
    ], axes=("image",))
