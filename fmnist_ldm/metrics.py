"""Judging images: a Fashion-MNIST classifier (the "judge"), FID and KID in its penultimate
feature space (torchmetrics, with the judge as a custom feature extractor), precision / recall
and density / coverage in the same space, class accuracy of class-conditional samples, and the
VAE's reconstruction MSE / PSNR / SSIM.

FID is biased by the sample count n, so every FID is reported beside the real-vs-real
baseline: real train images against real test images, at the same n."""
from __future__ import annotations

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


def evaluate_samples(images_uint8, labels, judge=None, data_dir=None, seed: int = 0) -> dict:
    """Everything we report about a set of samples, beside the real-data baseline at the same n.
    Samples are compared with n real test images; the baseline compares n real train images
    with the same test images. Labels of NUM_CLASSES (10, unconditional) are left out of the accuracy.
    Fewer than 512 images are refused (ValueError), fewer than 2,000 warned about: see
    evaluate.check_sample_count. (fid_kid itself takes any n.)"""
    from .evaluate import check_sample_count
    check_sample_count(len(images_uint8))
    judge = judge or load_judge()
    images_uint8, labels = torch.as_tensor(images_uint8), torch.as_tensor(labels)
    gen = torch.Generator().manual_seed(seed)
    test_x, _ = load_fashion_mnist("test", data_dir)
    train_x, _ = load_fashion_mnist("train", data_dir)
    n = min(len(images_uint8), len(test_x))
    test = test_x[torch.randperm(len(test_x), generator=gen)[:n]]
    fake = images_uint8[torch.randperm(len(images_uint8), generator=gen)[:n]]
    real = train_x[torch.randperm(len(train_x), generator=gen)[:n]]
    test = judge_features(judge, test)                   # once, for both comparisons
    out = {"n": n, **fid_kid(test, fake, judge)}
    base = fid_kid(test, real, judge)
    out.update(fid_real_baseline=base["fid"], kid_real_baseline=base["kid"],
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
