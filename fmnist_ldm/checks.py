"""The argument checks every public entry point shares (Pipeline.generate, inpaint, invert,
sampling.slerp, the command line): each bad value becomes one ValueError that starts with the
argument's name and says what it takes, before any work, instead of an IndexError from inside
the UNet, a label 3.7 silently truncated to 3, or a NaN that turns every image black."""
from __future__ import annotations

import math
import numbers
import tempfile
from pathlib import Path

import numpy as np
import torch

from .config import IMAGE_SIZE
from .data import parse_class

MAX_SEED = 2**63 - 1   # torch also maps negative seeds, but elsewhere -1 means "random", which we lack


def whole(name: str, v, lo: int, hi=math.inf, why: str = "") -> None:
    """v must be a whole number in [lo, hi] (bools are not numbers here)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not lo <= v <= hi:
        span = f">= {lo}" if hi == math.inf else f"from {lo} to {hi}"
        raise ValueError(f"{name} must be a whole number {span}{why}, not {v!r}")


def real(name: str, v, lo: float, hi: float, what: str) -> None:
    """v must be a finite number in [lo, hi]; `what` says so in the message."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name} must be a number {what}, not {v!r}")


def seed(v) -> None:
    """A seed torch takes and that means one run: 0 to 2**63 - 1."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= v <= MAX_SEED:
        raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1, not {v!r}")


def classes(labels, name: str, null: int) -> list[int]:
    """Classes given as indices, names ('Sneaker'), 'none' (the null class), one or a list, as a
    list of ints; anything else a ValueError starting with `name`."""
    what = f"classes 0-{null - 1}, {null} (unconditional) or class names such as 'Sneaker'"
    if isinstance(labels, (torch.Tensor, np.ndarray)):
        labels = labels.tolist()                   # then each value is checked like a list's
    if isinstance(labels, (str, numbers.Integral)):
        labels = [labels]                          # one image
    try:
        items = list(labels)
    except TypeError:
        raise ValueError(f"{name} must be a list of {what}, not {labels!r}") from None
    if not items:
        raise ValueError(f"{name} is empty: give one class per image ({what})")
    out = []
    for v in items:
        if isinstance(v, torch.Tensor) and v.dim() == 0:
            v = v.item()
        if isinstance(v, str):
            try:
                v = parse_class(v, allow_null=True)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
        elif isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= v <= null:
            raise ValueError(f"{name} must be {what}, not {v!r}")
        out.append(int(v))
    return out


def one_per_image(name: str, values: list, n: int, per: str = "image") -> list:
    """One value for every image, or one per image (or per label: `per` names it)."""
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ValueError(f"{name} must be one class, or one per {per} ({n}), not {len(values)}")
    return values


def _described(v) -> str:
    if isinstance(v, (torch.Tensor, np.ndarray)):
        return f"{v.dtype} {tuple(v.shape)}"
    return type(v).__name__


def uint8_images(name: str, images) -> torch.Tensor:
    """Grey images as Fashion-MNIST stores them, uint8 [N, 28, 28] (a tensor or numpy array), as a
    CPU tensor."""
    shape = f"[N, {IMAGE_SIZE}, {IMAGE_SIZE}]"
    if not isinstance(images, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a uint8 tensor {shape} (e.g. load_fashion_mnist's), not {_described(images)}")
    t = torch.as_tensor(images).cpu()
    if t.dtype != torch.uint8 or t.dim() != 3 or tuple(t.shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE) or len(t) == 0:
        hint = " (float images in [-1, 1]? data.to_uint8 turns them back)" if t.is_floating_point() else ""
        raise ValueError(f"{name} must be a uint8 tensor {shape} with N >= 1, not {_described(images)}{hint}")
    return t


def pixel_mask(name: str, mask, n: int) -> torch.Tensor:
    """A bool mask [28, 28] for every image, or [N, 28, 28] one per image (0/1 integers allowed),
    as bool [N, 28, 28]."""
    if not isinstance(mask, (torch.Tensor, np.ndarray)):
        raise ValueError(f"{name} must be a bool tensor [{IMAGE_SIZE}, {IMAGE_SIZE}] or [{n}, {IMAGE_SIZE}, "
                         f"{IMAGE_SIZE}], not {_described(mask)}")
    m = torch.as_tensor(mask).cpu()
    if tuple(m.shape) not in ((IMAGE_SIZE, IMAGE_SIZE), (n, IMAGE_SIZE, IMAGE_SIZE)):
        raise ValueError(f"{name} must be [{IMAGE_SIZE}, {IMAGE_SIZE}] (one for all) or [{n}, {IMAGE_SIZE}, "
                         f"{IMAGE_SIZE}] (one per image), not {tuple(m.shape)}")
    if m.dtype != torch.bool:
        if m.is_floating_point() or m.is_complex() or not ((m == 0) | (m == 1)).all():
            raise ValueError(f"{name} must be bool (True where to redraw) or 0/1, not {m.dtype} values")
        m = m.bool()
    if not m.any():
        raise ValueError(f"{name} selects no pixel: there is nothing to redraw (True marks what to redraw)")
    return m.expand(n, IMAGE_SIZE, IMAGE_SIZE)


def states(name: str, x, shape: tuple) -> None:
    """A float tensor of exactly `shape`, finite."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or tuple(x.shape) != tuple(shape):
        raise ValueError(f"{name} must be a float tensor of shape {tuple(shape)}, one state per label, "
                         f"not {_described(x)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")


# Files a command will write: checked before it starts work, not after a whole run.

def _first_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def _probe(folder: Path, target: Path, flag: str):
    """os.access says yes to root everywhere (/proc, read-only mounts): make a file to be sure."""
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise ValueError(f"cannot write {target}: {folder} does not accept new files ({e.strerror}); "
                         f"choose another {flag}") from None


def out_file(path: Path, flag: str, suffixes, example: str):
    """Before any work: a file that can be written, with the right suffix, in an existing folder."""
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder: give a file name, e.g. {path / example}")
    if path.suffix not in suffixes:
        raise ValueError(f"{flag} must end in {' or '.join(suffixes)}, not {path.name!r}")
    parent = path.absolute().parent
    base = _first_existing(parent)
    if not base.is_dir():
        raise ValueError(f"cannot write {path}: {base} is a file, not a folder; choose another {flag}")
    if base != parent:
        raise ValueError(f"cannot write {path}: folder {parent} does not exist; create it or choose another {flag}")
    if path.exists():
        try:
            open(path, "ab").close()       # appending nothing changes nothing
        except OSError as e:
            raise ValueError(f"cannot write {path}: {e.strerror}; choose another {flag}") from None
    else:
        _probe(parent, path, flag)


def out_dir(path: Path, flag: str):
    """Before any work: a folder that exists or can be made (the commands create it)."""
    base = _first_existing(path)
    if not base.is_dir():
        what = f"{flag} {path} is a file" if base == path.absolute() else f"cannot make {path}: {base} is a file"
        raise ValueError(f"{what}, not a folder; choose another {flag}")
    _probe(base, path, flag)
