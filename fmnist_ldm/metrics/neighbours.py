"""Nearest neighbours in the judge's feature space (or in pixels): precision / recall and density /
coverage of a set of samples, and a memorisation check (each sample's nearest training image,
beside the same for real test images)."""
from __future__ import annotations

import torch

from .judge import judge_features


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
