"""Judging images: a Fashion-MNIST classifier (the "judge"), FID and KID in its penultimate
feature space (torchmetrics, with the judge as a custom feature extractor), precision / recall
and density / coverage in the same space, class accuracy of class-conditional samples, the
VAE's reconstruction MSE / PSNR / SSIM, and a memorisation check (each sample's nearest training
image, beside the same for real test images).

FID is biased by the sample count n, so every FID is reported beside the real-vs-real
baseline: real train images against real test images, at the same n."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import NUM_CLASSES, Config
from .data import load_fashion_mnist, to_model_range
from .device import autocast, get_device
from .train import fit
from .weights import MODEL_DIR

JUDGE_FILE = MODEL_DIR / "judge.safetensors"


class Judge(nn.Module):
    """A small VGG-style CNN: 2 x (conv-BN-ReLU x2, max-pool), then 256 features, then 10 logits."""

    num_features = 256   # read by torchmetrics

    def __init__(self):
        super().__init__()
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
        self.body = nn.Sequential(*block(1, 32), *block(32, 32), nn.MaxPool2d(2),
                                  *block(32, 64), *block(64, 64), nn.MaxPool2d(2), nn.Flatten(),
                                  nn.Linear(64 * 7 * 7, 256), nn.BatchNorm1d(256), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(256, NUM_CLASSES))

    def features(self, x):
        """float [N,1,28,28] in [-1,1] -> penultimate features [N,256]."""
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


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


def train_judge(epochs: int = 8, seed: int = 0, data_dir=None, batch_size: int = 128, device=None):
    """Adam (AdamW without weight decay) with a one-cycle learning rate peaking at 3e-3 (Smith &
    Topin 2019), on the real training set with random shifts of up to 2 pixels, through the
    library's training loop (train.fit), with no EMA; returns (judge, test accuracy).
    (The shipped judge was trained by an earlier loop with the same recipe but its own random
    draws: one generator for both batch order and shifts.)"""
    torch.manual_seed(seed)
    device = get_device(device)
    images, labels = load_fashion_mnist("train", data_dir)
    x, labels = to_model_range(images).to(device), labels.to(device)    # on the device once
    judge = Judge()

    def loss(idx, gen):
        # the shift is drawn on the CPU: reading a GPU draw (.tolist()) would wait for the GPU every step
        dx, dy = torch.randint(-2, 3, (2,), generator=torch.Generator().manual_seed(gen.initial_seed())).tolist()
        xb = torch.roll(F.pad(x[idx], (2, 2, 2, 2), value=-1), (dy, dx), (2, 3))[..., 2:30, 2:30]
        return F.cross_entropy(judge(xb).float(), labels[idx])
    one_cycle = lambda opt, total: torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=total)
    judge, _ = fit(judge, loss, len(x), batch_size, 1e-3, epochs=epochs, seed=seed, lr_schedule=one_cycle,
                   bf16=True, desc="judge", device=device)
    test_x, test_y = load_fashion_mnist("test", data_dir)
    return judge, class_accuracy(judge, test_x, test_y)["accuracy"]


def load_judge(path=JUDGE_FILE, device=None) -> Judge:
    from .weights import WeightsError, read_weights
    state, _, _ = read_weights(path, "judge")
    judge = Judge()
    try:
        judge.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path} does not fit the judge network: {str(e)[:200]}") from None
    return judge.eval().to(get_device(device))


@torch.no_grad()
def predict(judge: Judge, images_uint8, batch: int = 2000) -> torch.Tensor:
    device = next(judge.parameters()).device
    return torch.cat([judge(to_model_range(images_uint8[i:i + batch].to(device))).argmax(1).cpu()
                      for i in range(0, len(images_uint8), batch)])


def class_accuracy(judge, images_uint8, labels) -> dict:
    """Fraction of images the judge assigns to the class they were asked for, overall and per class."""
    pred, labels = predict(judge, images_uint8), torch.as_tensor(labels)
    hit = (pred == labels).float()
    per_class = {int(c): round(hit[labels == c].mean().item(), 4) for c in labels.unique()}
    return {"accuracy": round(hit.mean().item(), 4), "per_class_accuracy": per_class}


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


@torch.no_grad()
def judge_features(judge, images_uint8, batch: int = 2000) -> torch.Tensor:
    """The judge's 256 penultimate features of uint8 images (the space FID, KID and
    precision/recall are computed in), float64 on the CPU."""
    judge, images_uint8 = judge.eval(), torch.as_tensor(images_uint8)
    device = next(judge.parameters()).device
    # float32 on the device (MPS has no float64), float64 for the statistics on the CPU
    return torch.cat([judge.features(to_model_range(images_uint8[i:i + batch].to(device, torch.uint8))).float().cpu()
                      for i in range(0, len(images_uint8), batch)]).double()


def precision_recall(real_features, fake_features, k: int = 5) -> dict:
    """Fidelity and variety as two numbers, from k-nearest-neighbour balls in a feature space.

    Each point's ball reaches its k-th nearest neighbour in its own set (Kynkaenniemi et al. 2019):
      precision = share of fake points inside some real ball  (do samples look real?)
      recall    = share of real points inside some fake ball  (is every kind of real image made?)
    and two from the real balls only, which a few outlying samples sway less (Naeem et al. 2020):
      density   = mean over fake points of (number of real balls holding it) / k  (about 1 if alike)
      coverage  = share of real points whose ball holds at least one fake point.
    Two identical sets score precision = recall = coverage = 1 and density = 1 + 1/k (each point
    sits in its own ball too). The radii shrink as n grows, so compare scores at equal n."""
    real, fake = real_features.float(), fake_features.float()

    def radii(x):                            # distance of each point to its k-th neighbour (itself excluded)
        return torch.cdist(x, x).kthvalue(k + 1, dim=1).values

    r_real, r_fake = radii(real), radii(fake)
    d = torch.cdist(fake, real)                                  # [n_fake, n_real]
    in_real_ball = d <= r_real[None, :]                          # fake j inside real ball i
    in_fake_ball = d <= r_fake[:, None]                          # real i inside fake ball j
    return {"precision": in_real_ball.any(1).float().mean().item(),
            "recall": in_fake_ball.any(0).float().mean().item(),
            "density": (in_real_ball.sum(1).float() / k).mean().item(),
            "coverage": in_real_ball.any(0).float().mean().item()}


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


@torch.no_grad()
def reconstruction_metrics(vae, images_uint8, cfg: Config | None = None, batch: int = 1000) -> dict:
    """Test-set reconstruction through the posterior mean: MSE and PSNR on [0,1] pixels, SSIM."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
    se, count = 0.0, 0
    device = vae.scale.device
    ssim = ssim.to(device)
    for i in range(0, len(images_uint8), batch):
        x = to_model_range(images_uint8[i:i + batch].to(device))
        with autocast(device, cfg.bf16 if cfg else True):
            rec = vae.decode(vae.encode(x)[0]).float().clamp(-1, 1)
        a, b = (x + 1) / 2, (rec + 1) / 2
        se += (a - b).pow(2).sum().item()
        count += a.numel()
        ssim.update(b, a)
    mse = se / count
    return {"mse": round(mse, 6), "psnr": round(10 * torch.log10(torch.tensor(1 / mse)).item(), 2),
            "ssim": round(ssim.compute().item(), 4)}


# --- Does the model copy its training set? ---------------------------------------------------

def nearest_neighbours(queries, references, batch: int = 512):
    """The exact Euclidean nearest neighbour of each query row among the reference rows.

    queries float [n, d], references float [N, d] -> (distances [n], indices int64 [n]), on the CPU:
        indices[j] = argmin_i ||queries[j] - references[i]||,   distances[j] = that smallest distance,
    in the inputs' float dtype. `batch` queries at a time, so that at most a [batch, N] matrix of
    distances exists at once (512 x 60,000 in float64: 246 MB), never [n, N]."""
    queries, references = torch.as_tensor(queries), torch.as_tensor(references)
    if not (queries.is_floating_point() and references.is_floating_point()):
        raise TypeError("nearest_neighbours takes float rows; for uint8 images use pixel_vectors(images) "
                        "or judge_features(judge, images)")
    if queries.dim() != 2 or references.dim() != 2 or queries.shape[1] != references.shape[1]:
        raise ValueError(f"nearest_neighbours: queries [n, d] and references [N, d], "
                         f"got {tuple(queries.shape)} and {tuple(references.shape)}")
    dtype = torch.promote_types(queries.dtype, references.dtype)
    references = references.to(dtype)
    queries = queries.to(references.device, dtype)
    k = min(8, len(references))              # candidates per query, see below
    distances, indices = [], []
    for start in range(0, len(queries), batch):
        q = queries[start:start + batch]                                      # [b, d]
        # cdist computes |q|^2 + |r|^2 - 2 q.r with one matrix product: fast, but it rounds (a copy
        # may come out at ~0.01, not 0, in float32 pixels). So it only proposes k candidates...
        candidates = torch.cdist(q, references).topk(k, dim=1, largest=False).indices    # [b, k]
        # ... and their distances are computed again directly, from the differences: exact
        exact = (q[:, None, :] - references[candidates]).norm(dim=2)                      # [b, k]
        best = exact.argmin(dim=1)
        distances.append(exact.gather(1, best[:, None])[:, 0].cpu())
        indices.append(candidates.gather(1, best[:, None])[:, 0].cpu())
    if not distances:                        # no queries
        return torch.empty(0, dtype=dtype), torch.empty(0, dtype=torch.int64)
    return torch.cat(distances), torch.cat(indices)


def pixel_vectors(images_uint8) -> torch.Tensor:
    """uint8 images [N, 28, 28] -> float32 [N, 784] in [0, 1]: the pixel space the check compares in."""
    return torch.as_tensor(images_uint8).flatten(1).float() / 255


def _require_uint8(name, images):
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8:          # judge_features would wrap floats into uint8 silently
        raise TypeError(f"memorisation: {name} must be uint8 images [N, 28, 28], got {images.dtype}")
    return images


def memorisation(samples_uint8, train_uint8, test_uint8, judge, seed: int = 0, batch: int = 512) -> dict:
    """Does the model copy its training set? Each sample's nearest training image, beside the
    same for n real test images (images the model never saw), n = the number of samples.

    Two spaces: the judge's 256 features (judge_features: "looks like the same garment") and
    pixels (pixel_vectors, [0, 1], 784 values: "is the same picture"). A copy of a training image
    sits at distance 0 in pixels, and at about 1e-5 in judge features (the judge's float32
    arithmetic varies a little with the batch it is run in). The n test images are drawn at
    random from test_uint8 (seeded by `seed`; the caller's RNG is untouched).

    Returns a dict:
      "n", "test_images" (the n test images used, uint8 [n, 28, 28]) and "test_index" (where they are
          in test_uint8, int64 [n]: test labels[test_index] are their labels),
      "judge" and "pixels": {"samples": (distances [n], indices [n]), "test": (distances, indices)},
          indices into train_uint8, from nearest_neighbours (CPU, int64),
      "summary": per space, "median_samples" and "median_test" (the median distance to the nearest
          training image), "test_5th_percentile" (of the test images' distances) and "share_below":
          the share of samples closer to their nearest training image than that.
    Why that share: test images are new images from the data distribution, and by construction 5 %
    of them fall below their own 5th percentile. A model that draws new images from the same
    distribution scores about 0.05 too (give or take 0.01 at n = 2,000); copies land far below
    the threshold, so a model that copies a fraction c of its samples scores about c + 0.05 (1 - c).
    A median cannot see a few copies among many new images; this tail share can. It says "closer
    than new real images are", not "copied": samples crowded into the most typical regions (strong
    guidance) may sit close to training images too. Look at the pairs before calling anything a copy."""
    samples = _require_uint8("samples_uint8", samples_uint8)
    train = _require_uint8("train_uint8", train_uint8)
    test = _require_uint8("test_uint8", test_uint8)
    n = len(samples)
    if len(test) < n:
        raise ValueError(f"memorisation: {n} samples need at least as many test images, got {len(test)}")
    test_index = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n]
    test = test[test_index]
    out = {"n": n, "test_images": test, "test_index": test_index, "summary": {}}
    spaces = {"judge": lambda images: judge_features(judge, images), "pixels": pixel_vectors}
    for space, embed in spaces.items():
        reference = embed(train)                         # the training set, once per space
        found = {"samples": nearest_neighbours(embed(samples), reference, batch),
                 "test": nearest_neighbours(embed(test), reference, batch)}
        out[space] = found
        out["summary"][space] = _memorisation_summary(found["samples"][0], found["test"][0])
    return out


def _memorisation_summary(d_samples, d_test) -> dict:
    """Medians of both sets' nearest-training-image distances, and the share of samples closer
    than the test images' 5th percentile (about 0.05 when the samples are new images)."""
    d_samples, d_test = d_samples.double(), d_test.double()
    threshold = torch.quantile(d_test, 0.05)
    return {"median_samples": torch.quantile(d_samples, 0.5).item(),
            "median_test": torch.quantile(d_test, 0.5).item(),
            "test_5th_percentile": threshold.item(),
            "share_below": (d_samples < threshold).double().mean().item()}
