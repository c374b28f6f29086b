"""Exercises of notebook 06 (evaluation): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import torch

from .grading import Verdict, gen, grade

__all__ = ["check_recall", "check_kid_mmd"]


def check_recall(fn) -> Verdict:
    """fn(real [N, D], fake [M, D], k) -> recall (Kynkaenniemi et al. 2019): the share of real
    points inside at least one fake point's ball, the ball reaching that fake point's k-th nearest
    other fake point (metrics.precision_recall). N, M, D and k all differ, and the fakes are
    bunched up, so that recall, precision and coverage are three different numbers."""
    from ...metrics import precision_recall
    g = gen(10)
    k = 3
    real, fake = torch.randn(37, 6, generator=g), 0.6 * torch.randn(23, 6, generator=g) + 0.4
    d = torch.cdist(fake, real)                                           # [M, N]
    radius = lambda x, kth: torch.cdist(x, x).kthvalue(kth, dim=1).values
    share = lambda hit: hit.float().mean()
    scores = precision_recall(real, fake, k)
    return grade("recall", lambda: fn(real.clone(), fake.clone(), k), torch.tensor(scores["recall"]), [
        (share((d <= radius(fake, k)[:, None]).any(0)),
         "each sample is its own nearest neighbour (distance 0): its k-th neighbour is kthvalue(k + 1)."),
        (torch.tensor(scores["coverage"]),
         "that is coverage: the balls around the real images. Recall's balls are around the samples, "
         "each reaching its k-th nearest other sample."),
        (torch.tensor(scores["precision"]),
         "that is precision (samples inside real balls); recall asks which real images fall inside sample balls."),
        (share((d <= radius(fake, k + 1)[:, None]).any(1)),
         "that is a share of the samples (any over the real axis); recall is a share of the real "
         "images: for each real image, is it inside any sample's ball (any over the sample axis)?"),
    ], rtol=0, atol=1e-9)


def check_kid_mmd(fn) -> Verdict:
    """fn(real [m, D], fake [n, D]) -> the unbiased squared MMD under the cubic polynomial kernel
    k(x, y) = (x.y / D + 1)^3, what KID averages over subsets (metrics.kid_mmd). m, n and D differ."""
    from ...metrics import kid_mmd
    g = gen(11)
    real = torch.randn(31, 7, generator=g, dtype=torch.float64) * 1.5
    fake = torch.randn(19, 7, generator=g, dtype=torch.float64) * 1.1 + 0.6
    m, n, d = len(real), len(fake), real.shape[1]

    def mmd(kernel, within=lambda K, size: (K.sum() - K.diagonal().sum()) / (size * (size - 1)),
            cross=lambda K: 2 * K.mean()):
        return within(kernel(real, real), m) + within(kernel(fake, fake), n) - cross(kernel(real, fake))
    cubic = lambda a, b: (a @ b.T / d + 1) ** 3
    one_m = lambda K, size: (K.sum() - K.diagonal().sum()) / (m * (m - 1))
    return grade("unbiased MMD² (KID)", lambda: fn(real.clone(), fake.clone()), torch.tensor(kid_mmd(real, fake)), [
        (mmd(cubic, within=lambda K, size: K.mean()),
         "the diagonals are included (each point with itself): that estimate is biased. Leave out "
         "i = j in the two within-set sums and divide by m (m - 1) and n (n - 1)."),
        (mmd(lambda a, b: (a @ b.T + 1) ** 3),
         "the kernel is (x.y / D + 1)^3: divide the dot product by the number of features D."),
        (mmd(lambda a, b: (a @ b.T / d + 1) ** 2), "the kernel is cubic: (x.y / D + 1)^3, not squared."),
        (mmd(cubic, within=one_m, cross=lambda K: 2 * K.sum() / m ** 2),
         "the two sets have different sizes: divide the fake sum by n (n - 1) and the cross sum by m n, not by m."),
        (mmd(cubic, cross=lambda K: K.mean()), "the cross term counts twice: - 2 × the mean of k(real, fake)."),
    ], rtol=1e-6, atol=1e-9)
