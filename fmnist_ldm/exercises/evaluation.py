"""Exercises of notebook 06 (evaluation): one `check_<name>(student_fn)` each."""
from __future__ import annotations

import torch

from .grading import gen, grade

__all__ = ["check_frechet_distance", "check_precision"]


def check_frechet_distance(fn) -> bool:
    """fn(mu1, sigma1, mu2, sigma2) -> ||mu1 - mu2||² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)),
    float64 (what torchmetrics computes for FID)."""
    from torchmetrics.image.fid import _compute_fid
    g = gen(9)
    a, b = torch.randn(200, 8, generator=g, dtype=torch.float64), 1.3 * torch.randn(200, 8, generator=g, dtype=torch.float64) + 0.2
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    root = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()
    mean_term, tr = (mu1 - mu2).pow(2).sum(), torch.trace(s1) + torch.trace(s2)
    return grade("Fréchet distance", lambda: fn(mu1.clone(), s1.clone(), mu2.clone(), s2.clone()),
                  _compute_fid(mu1, s1, mu2, s2), [
        ((mu1 - mu2).norm() + tr - 2 * root, "the mean term is the squared distance, ||mu1 - mu2||²."),
        (mean_term + tr - root, "the matrix square root term is counted twice: - 2 Tr((sigma1 sigma2)^(1/2))."),
        (mean_term + tr - 2 * torch.trace(s1 @ s2), "the square root of sigma1 sigma2 is missing (its eigenvalues' square roots)."),
        (mean_term, "the covariance term is missing."),
    ], rtol=1e-6, atol=1e-6)


def check_precision(fn) -> bool:
    """fn(real [N,D], fake [M,D], k) -> precision (Kynkaanniemi et al. 2019): the share of fake
    points within the k-th-nearest-neighbour radius of at least one real point (metrics.precision_recall)."""
    from ..metrics import precision_recall
    g = gen(10)
    real, fake = torch.randn(300, 6, generator=g), 1.4 * torch.randn(200, 6, generator=g) + 0.3
    d_rr = torch.cdist(real, real)
    d = torch.cdist(fake, real)
    wrong_k = (d <= d_rr.kthvalue(5, dim=1).values[None]).any(1).float().mean()
    return grade("precision", lambda: fn(real.clone(), fake.clone(), 5),
                  torch.tensor(precision_recall(real, fake, 5)["precision"]), [
        (wrong_k, "each real point is its own nearest neighbour (distance 0): the k-th neighbour is kthvalue(k + 1)."),
        (torch.tensor(precision_recall(real, fake, 5)["recall"]), "that is recall (real points inside fake balls); precision asks which fakes fall in real balls."),
    ], rtol=0, atol=1e-9)
