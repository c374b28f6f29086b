"""FID and KID in the judge's feature space (torchmetrics, with the judge as a custom feature
extractor), how many samples they need, their dependence on n, and `evaluate_samples`: everything
reported about a set of samples.

FID is biased by the sample count n, so every FID is reported beside the real-vs-real
baseline: real train images against real test images, at the same n."""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn

from ..classifier import Judge
from ..config import NUM_CLASSES
from ..data import load_fashion_mnist
from .judge import class_accuracy, judge_features, load_judge

# FID fits a Gaussian to each set's 256 judge features. Below 2 x 256 images the covariance
# is estimated from too few images to mean anything (2 noise images scored "better than real");
# below 2,000 FID is still strongly biased (~1/n) and noisy. The project reports n = 5,000.
JUDGE_FEATURES = Judge.num_features      # 256
MIN_FID_N = 2 * JUDGE_FEATURES
RECOMMENDED_FID_N = 2000
REPORTED_N = 5000


class FewSamplesWarning(UserWarning):
    """Enough samples to compute FID, too few to trust it."""


def check_sample_count(n: int, warn: bool = True) -> str | None:
    """Refuse (ValueError) fewer than MIN_FID_N images; below RECOMMENDED_FID_N return (and, with
    warn, also emit as a FewSamplesWarning) a note saying why the number is not to be trusted."""
    reported = f"{REPORTED_N:,} (--n-per-class {REPORTED_N // 10}) to compare with the numbers this project reports"
    if n < MIN_FID_N:
        raise ValueError(
            f"FID/KID need at least {MIN_FID_N} images, not n = {n}: FID fits a Gaussian to the judge's "
            f"{JUDGE_FEATURES} features, and from fewer than 2 x {JUDGE_FEATURES} images its covariance is "
            f"too poorly estimated to mean anything (2 noise images can score 'better than real'); "
            f"evaluate at least {MIN_FID_N} (--n-per-class {math.ceil(MIN_FID_N / 10)}), "
            f"{RECOMMENDED_FID_N:,} or more to trust the number, {reported}")
    if n >= RECOMMENDED_FID_N:
        return None
    note = (f"FID at n = {n} is computable but not to be trusted: below {RECOMMENDED_FID_N:,} images it is "
            f"noisy and biased upwards (~1/n), and the FID ratio depends on n; use {reported}")
    if warn:
        warnings.warn(note, FewSamplesWarning, stacklevel=3)
    return note


class _GivenFeatures(nn.Module):
    """The 'extractor' for features already computed: torchmetrics gets them as they are."""

    num_features = Judge.num_features

    def forward(self, features):
        return features.double()


def _as_features(images_or_features, judge):
    x = torch.as_tensor(images_or_features)
    if x.is_floating_point() and x.dim() == 2:
        return x.double().cpu()
    if judge is None:
        raise ValueError("fid_kid: uint8 images need the judge (fid_kid(real, fake, judge)); "
                         "or pass judge features from metrics.judge_features")
    return judge_features(judge, x)


def fid_kid(real, fake, judge=None, seed: int = 0) -> dict:
    """FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) in the judge's feature space.
    real, fake: uint8 images [N,28,28] (then pass the judge), or their judge features [N,256]
    from judge_features, so that many sets can be scored against one real set, and one set at
    several n, without running the judge again. KID is the mean (and std) over 10 random
    subsets; `seed` fixes them, so the same images give the same KID on every run (without
    touching the caller's global RNG). The statistics are float64 sums on the CPU."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance
    real, fake = _as_features(real, judge), _as_features(fake, judge)
    fid = FrechetInceptionDistance(feature=_GivenFeatures())
    with warnings.catch_warnings():          # its note that it keeps all features: 256 per image, fine here
        warnings.filterwarnings("ignore", "Metric `Kernel Inception Distance` will save all extracted features")
        kid = KernelInceptionDistance(feature=_GivenFeatures(), subsets=10, subset_size=min(1000, len(real), len(fake)))
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)                  # torchmetrics draws KID's subsets from the global CPU RNG
        kid_mean, kid_std = kid.compute()
    return {"fid": round(fid.compute().item(), 4), "kid": round(kid_mean.item(), 6),
            "kid_std": round(kid_std.item(), 6)}


def fid_over_n(real, fake, judge=None, ns=(500, 1000, 2000, 5000)) -> list[float]:
    """FID of the first n of each (already shuffled) set, for each n in ns: images with the
    judge, or judge features (then each set goes through the judge once, not once per n)."""
    real, fake = _as_features(real, judge), _as_features(fake, judge)
    return [fid_kid(real[:n], fake[:n])["fid"] for n in ns]


def fid_infinity(ns, fids) -> float:
    """FID at n = inf (Chong & Forsyth 2020): FID's bias is ~linear in 1/n, so fit
    FID_n = FID_inf + b / n by least squares and return the intercept."""
    design = torch.tensor([[1.0, 1.0 / n] for n in ns], dtype=torch.float64)
    target = torch.tensor(fids, dtype=torch.float64)[:, None]
    return torch.linalg.lstsq(design, target).solution[0, 0].item()


def kid_mmd(real_features, fake_features, degree: int = 3, coef: float = 1.0) -> float:
    """The unbiased estimate of the squared maximum mean discrepancy under the polynomial kernel
    k(x, y) = (x.y / d + coef) ** degree (d features), the quantity KID averages over subsets:
        MMD^2 = sum_{i != j} k(r_i, r_j) / (m (m - 1)) + sum_{i != j} k(f_i, f_j) / (n (n - 1))
                - 2 sum_{i, j} k(r_i, f_j) / (m n)
    for m real and n fake rows. Leaving out the diagonals (each point with itself) is what makes
    it unbiased, and why two sets from one distribution score about 0, sometimes a little below."""
    real, fake = torch.as_tensor(real_features).double(), torch.as_tensor(fake_features).double()
    m, n, d = len(real), len(fake), real.shape[1]
    kernel = lambda a, b: (a @ b.T / d + coef) ** degree
    k_rr, k_ff, k_rf = kernel(real, real), kernel(fake, fake), kernel(real, fake)
    within_real = (k_rr.sum() - k_rr.diagonal().sum()) / (m * (m - 1))
    within_fake = (k_ff.sum() - k_ff.diagonal().sum()) / (n * (n - 1))
    return (within_real + within_fake - 2 * k_rf.mean()).item()


def evaluation_draw(n_samples: int, n_test: int, n_train: int, seed: int = 0) -> dict:
    """The subsets evaluate_samples scores, as indices: n = min(n_samples, n_test), then three
    random draws of n from one generator seeded by `seed`, in this order: "test" (into the test
    set), "samples" (into the samples: an order) and "train" (into the training set: the
    real-vs-real baseline). Anyone who uses the same indices gets evaluate_samples' numbers."""
    gen = torch.Generator().manual_seed(seed)
    n = min(n_samples, n_test)
    test = torch.randperm(n_test, generator=gen)[:n]
    samples = torch.randperm(n_samples, generator=gen)[:n]
    train = torch.randperm(n_train, generator=gen)[:n]
    return {"n": n, "test": test, "samples": samples, "train": train}


def evaluate_samples(images_uint8, labels, judge=None, data_dir=None, seed: int = 0) -> dict:
    """Everything we report about a set of samples, beside the real-data baseline at the same n.
    Samples are compared with n real test images; the baseline compares n real train images
    with the same test images. Labels of NUM_CLASSES (10, unconditional) are left out of the accuracy.
    Fewer than 512 images are refused (ValueError), fewer than 2,000 warned about: see
    check_sample_count. (fid_kid itself takes any n.)"""
    check_sample_count(len(images_uint8))
    judge = judge or load_judge()
    images_uint8, labels = torch.as_tensor(images_uint8), torch.as_tensor(labels)
    test_x, _ = load_fashion_mnist("test", data_dir)
    train_x, _ = load_fashion_mnist("train", data_dir)
    draw = evaluation_draw(len(images_uint8), len(test_x), len(train_x), seed)
    n = draw["n"]
    test, fake, real = test_x[draw["test"]], images_uint8[draw["samples"]], train_x[draw["train"]]
    test = judge_features(judge, test)                   # once, for both comparisons
    out = {"n": n, **fid_kid(test, fake, judge)}
    base = fid_kid(test, real, judge)
    out.update(fid_real_baseline=base["fid"], kid_real_baseline=base["kid"],
               fid_minus_real=round(out["fid"] - base["fid"], 4),      # the headline: FID is biased by n
               fid_ratio=round(out["fid"] / base["fid"], 3))
    cond = labels < NUM_CLASSES
    if cond.any():
        out.update(class_accuracy(judge, images_uint8[cond], labels[cond]))
    return out
