"""Writing a file so that it is never half written: a crash, a full disk or Ctrl-C while writing
leaves the old file (or none), never a truncated one that a later run would fail to read."""
from __future__ import annotations

import os
from pathlib import Path

import torch


def atomic_write(path, write) -> None:
    """write(tmp) writes the whole file at `tmp`, a temporary name in the same folder as `path`;
    then it is renamed to `path`, which replaces the old file in one step (os.replace is atomic
    within a file system). If `write` fails, the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_save(obj, path) -> None:
    """torch.save(obj, path), atomically: a checkpoint is the old one or the new one, never half."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))
