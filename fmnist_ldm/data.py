"""Finding and reading Fashion-MNIST, its class names, and the encoded-latent dataset.

The data is looked for, in order, in:
  1. an explicit folder: the `root` argument or the FMNIST_DATA environment variable;
  2. Debian's `dataset-fashion-mnist` package (/usr/share/datasets/fashion-mnist/);
  3. torchvision's download (needs the internet, e.g. on Colab), cached in ~/.cache/fmnist_ldm.
Each place must hold the four IDX files (gzipped or not) with their usual names.
"""
from __future__ import annotations

import gzip
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .config import CLASS_NAMES  # noqa: F401  (defined with the class count; read from here)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmnist_ldm"
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_SIZES = {"train": 60_000, "test": 10_000}


class DataNotFoundError(FileNotFoundError):
    pass


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        for sub in ("", "raw", "FashionMNIST/raw"):   # also accept torchvision's layout
            if (p := folder / sub / name).is_file():
                return p
    return None


def _read_idx(path: Path) -> np.ndarray:
    """IDX format: magic (0,0,dtype=8 for uint8, ndim), ndim big-endian sizes, raw bytes."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"{path} is not a uint8 IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _download(split: str) -> Path:
    from torchvision.datasets import FashionMNIST
    FashionMNIST(str(CACHE_DIR), train=split == "train", download=True)
    return CACHE_DIR / "FashionMNIST" / "raw"


def find_data_dir(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The first folder of (root, $FMNIST_DATA, Debian's, the download cache) that holds the set."""
    explicit = root or os.environ.get("FMNIST_DATA")
    candidates = [Path(explicit)] if explicit else [DEBIAN_DIR, CACHE_DIR]
    for folder in candidates:
        if all(_find(folder, f) for files in _FILES.values() for f in files):
            return folder
    if explicit:
        raise DataNotFoundError(
            f"Fashion-MNIST not found in {explicit} (from the data_dir argument or FMNIST_DATA): "
            "it must hold train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
            "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz).")
    if download:
        try:
            _download("train"), _download("test")
            return CACHE_DIR
        except Exception as e:  # no internet, no torchvision mirror...
            reason = f"the download failed ({type(e).__name__}: {e})"
    else:
        reason = "downloading was not allowed"
    raise DataNotFoundError(
        "Fashion-MNIST was not found. Do one of: (1) pass data_dir / set FMNIST_DATA to a folder "
        "with the four IDX files; (2) on Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist; "
        f"(3) go online so torchvision can download it. Here {reason}.")


def load_fashion_mnist(split: str = "train", root=None, download: bool = True):
    """(images uint8 [N,28,28], labels int64 [N]) of the real 'train' (60k) or 'test' (10k) split."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    images, labels = _read_split(find_data_dir(root, download), split)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


@lru_cache(maxsize=4)   # benchmarks and notebooks read the same split many times
def _read_split(folder: Path, split: str):
    images, labels = (_read_idx(_find(folder, f)) for f in _FILES[split])
    if images.shape != (_SIZES[split], 28, 28) or labels.shape != (_SIZES[split],):
        raise ValueError(f"{folder} holds a {split} split of shape {images.shape}, expected "
                         f"({_SIZES[split]}, 28, 28): is it really Fashion-MNIST?")
    return images, labels


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,28,28] in 0..255 -> float [N,1,28,28] in [-1, 1], what the models see."""
    return images_uint8.float().div(127.5).sub(1).unsqueeze(1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [N,1,28,28] in [-1, 1] -> uint8 [N,28,28], clipping what lies outside."""
    return x.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).squeeze(1)


def parse_class(name_or_index: str | int) -> int:
    """'Sneaker', 'sneaker', 'ankle boot', 'ankle-boot', '7' -> 7; anything else: ValueError."""
    s = str(name_or_index).strip()
    if s.isdigit() and int(s) < len(CLASS_NAMES):
        return int(s)
    norm = lambda n: "".join(ch for ch in n.lower() if ch.isalnum())
    for i, n in enumerate(CLASS_NAMES):
        if norm(s) in (norm(n), norm(n.split("/")[0])):
            return i
    raise ValueError(f"unknown class {name_or_index!r}: use 0-9 or one of "
                     + ", ".join(repr(n) for n in CLASS_NAMES))


class LatentDataset:
    """VAE posteriors of a whole split, encoded once: each batch draws z = mean + std * noise.

    Encoding once instead of every step is what makes UNet training cheap on a CPU.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, labels: torch.Tensor, scale: float):
        self.mean, self.std, self.labels, self.scale = mean, std, labels, scale

    def __len__(self):
        return len(self.labels)

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None):
        z = self.mean[idx]
        if self.std is not None:      # pixel space has no posterior: std is None
            z = z + self.std[idx] * torch.randn(z.shape, generator=generator)
        return z * self.scale, self.labels[idx]
