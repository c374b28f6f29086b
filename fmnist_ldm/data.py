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
import zlib
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


class DataError(ValueError):
    """A Fashion-MNIST file is there but cannot be read (truncated, corrupt, not IDX)."""


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        for sub in ("", "raw", "FashionMNIST/raw"):   # also accept torchvision's layout
            if (p := folder / sub / name).is_file():
                return p
    return None


def _repair_hint(path: Path) -> str:
    """What to do about a broken file depends on where it came from."""
    if DEBIAN_DIR in path.parents:
        return ("reinstall the package (as root, or with sudo: apt-get install --reinstall "
                "dataset-fashion-mnist)")
    if CACHE_DIR in path.parents:
        return f"delete the folder {CACHE_DIR} so that it is downloaded afresh"
    return "download a fresh copy of it, or point FMNIST_DATA / data_dir at a folder with intact files"


def _broken(path: Path, what: str) -> DataError:
    return DataError(f"Fashion-MNIST file {path} is {what}: {_repair_hint(path)}")


def _read_idx(path: Path) -> np.ndarray:
    """IDX format: magic (0,0,dtype=8 for uint8, ndim), ndim big-endian sizes, raw bytes.
    A file that does not hold exactly that is a DataError naming it (not gzip's or numpy's error)."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
            raw = f.read()
    except EOFError:                                  # gzip stream cut short: an interrupted copy
        raise _broken(path, "truncated or corrupt (its gzip stream ends early)") from None
    except gzip.BadGzipFile as e:                     # e.g. an HTML error page saved as .gz
        raise _broken(path, f"not a gzip file, or a corrupt one ({e})") from None
    except zlib.error as e:                           # the compressed data itself is damaged
        raise _broken(path, f"truncated or corrupt ({e})") from None
    except OSError as e:                              # unreadable: permissions, I/O error
        raise _broken(path, f"not readable ({e.strerror or e})") from None
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise _broken(path, f"not a uint8 IDX file (it starts with {raw[:4]!r}, not b'\\x00\\x00\\x08')")
    ndim, offset = raw[3], 4 + 4 * raw[3]
    if len(raw) < offset:
        raise _broken(path, f"truncated (its {len(raw)} bytes end inside the header)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected, held = int(np.prod(shape)), len(raw) - offset
    if held != expected:
        items = f"{shape[0]} items of shape {shape[1:]}" if ndim > 1 else f"{shape[0]} items"
        problem = "truncated" if held < expected else "corrupt (longer than its header says)"
        raise _broken(path, f"{problem}: its header says {items} ({expected} bytes), it holds {held} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


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
        "with the four IDX files; (2) on Debian/Ubuntu, as root, or with sudo: "
        "apt-get install dataset-fashion-mnist; "
        f"(3) go online so torchvision can download it. Here {reason}.")


def load_fashion_mnist(split: str = "train", root=None, download: bool = True):
    """(images uint8 [N,28,28], labels int64 [N]) of the real 'train' (60k) or 'test' (10k) split."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    folder = find_data_dir(root, download)
    paths = tuple(_find(folder, f) for f in _FILES[split])
    # the cache key holds each file's size and mtime: a file repaired or replaced on disk is read again
    stamps = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    images, labels = _read_split(paths, stamps, split)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


@lru_cache(maxsize=4)   # benchmarks and notebooks read the same split many times
def _read_split(paths: tuple[Path, Path], stamps, split: str):
    (image_path, label_path), n = paths, _SIZES[split]
    images, labels = _read_idx(image_path), _read_idx(label_path)
    for path, array, shape in ((image_path, images, (n, 28, 28)), (label_path, labels, (n,))):
        if array.shape != shape:
            raise _broken(path, f"of shape {array.shape}, not the {shape} of Fashion-MNIST's {split} split")
    return images, labels


def to_model_range(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [N,28,28] in 0..255 -> float [N,1,28,28] in [-1, 1], what the models see."""
    return images_uint8.float().div(127.5).sub(1).unsqueeze(1)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [N,1,28,28] in [-1, 1] -> uint8 [N,28,28], clipping what lies outside."""
    return x.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).squeeze(1)


def class_means(images: torch.Tensor, labels: torch.Tensor, num_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """images [N,H,W] (0..255), labels [N] -> float [K,H,W]: mean_c = average of the images labelled c."""
    return torch.stack([images[labels == c].float().mean(0) for c in range(num_classes)])


def class_spread(images: torch.Tensor, labels: torch.Tensor, num_classes: int = len(CLASS_NAMES)) -> torch.Tensor:
    """images [N,H,W] (0..255), labels [N] -> float [K,H,W]: the standard deviation of each pixel
    over the images labelled c, sqrt(sum_i (x_i - mean_c)^2 / (n_c - 1)) (torch's std, n_c - 1)."""
    return torch.stack([images[labels == c].float().std(0) for c in range(num_classes)])


def nearest_mean(images: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """images [N,H,W], means [K,H,W] -> int64 [N]: argmin_k sum_pixels (x - mean_k)^2, the class
    whose mean image is closest (Euclidean distance), a classifier with no training but the means."""
    distances = torch.cdist(images.flatten(1).float(), means.flatten(1).float(),   # [N, K], exact
                            compute_mode="donot_use_mm_for_euclid_dist")
    return distances.argmin(1)


def parse_class(name_or_index: str | int, allow_null: bool = False) -> int:
    """'Sneaker', 'sneaker', 'ankle boot', 'ankle-boot', '7' -> 7; with allow_null also 'none',
    'uncond', 'unconditional' and '10' -> 10, the null class; anything else: ValueError."""
    s = str(name_or_index).strip()
    null = len(CLASS_NAMES)
    if s.isdigit() and int(s) < null + allow_null:
        return int(s)
    if allow_null and s.lower() in ("none", "uncond", "unconditional"):
        return null
    norm = lambda n: "".join(ch for ch in n.lower() if ch.isalnum())
    for i, n in enumerate(CLASS_NAMES):
        if norm(s) in (norm(n), norm(n.split("/")[0])):
            return i
    raise ValueError(f"unknown class {name_or_index!r}: use 0-9 or one of "
                     + ", ".join(repr(n) for n in CLASS_NAMES) + (" or 'none'" if allow_null else ""))


class LatentDataset:
    """VAE posteriors of a whole split, encoded once: each batch draws z = mean + std * noise.

    Encoding once instead of every step is what makes UNet training cheap on a CPU.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, labels: torch.Tensor, scale: float):
        self.mean, self.std, self.labels, self.scale = mean, std, labels, scale

    def __len__(self):
        return len(self.labels)

    def to(self, device) -> "LatentDataset":
        """The same dataset with its tensors on `device` (indices and generators must be there too)."""
        move = lambda t: None if t is None else t.to(device)
        return LatentDataset(move(self.mean), move(self.std), move(self.labels), self.scale)

    def batch(self, idx: torch.Tensor, generator: torch.Generator | None = None):
        z = self.mean[idx]
        if self.std is not None:      # pixel space has no posterior: std is None
            z = z + self.std[idx] * torch.randn(z.shape, generator=generator, device=z.device)
        return z * self.scale, self.labels[idx]
