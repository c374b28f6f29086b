import gzip

import numpy as np
import pytest
import torch

from fmnist_ldm import data
from fmnist_ldm.data import (CLASS_NAMES, DataNotFoundError, load_fashion_mnist, parse_class,
                             to_model_range, to_uint8)


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_real_dataset_is_found_and_sane():
    """The real set (CI installs Debian's dataset-fashion-mnist): 60k/10k, balanced classes."""
    x, y = load_fashion_mnist("train", download=False)
    xt, yt = load_fashion_mnist("test", download=False)
    assert x.shape == (60_000, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert xt.shape == (10_000, 28, 28)
    assert torch.bincount(y).tolist() == [6000] * 10 and torch.bincount(yt).tolist() == [1000] * 10
    assert 70 < x.float().mean() < 80          # Fashion-MNIST's mean pixel is ~72.9


def test_reads_idx_files_from_an_explicit_folder(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for split, n in (("train", 60_000), ("t10k", 10_000)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path))
    x, y = load_fashion_mnist("test")
    assert x.shape == (10_000, 28, 28) and y.max() <= 9


def test_missing_data_names_every_way_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(data, "_download", lambda split: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(DataNotFoundError) as e:
        load_fashion_mnist("train")
    msg = str(e.value)
    assert "FMNIST_DATA" in msg and "apt-get install dataset-fashion-mnist" in msg and "download" in msg
    with pytest.raises(DataNotFoundError, match="t10k-images"):
        load_fashion_mnist("train", root=tmp_path)


def test_ranges_round_trip():
    u = torch.arange(256, dtype=torch.uint8).repeat(4)[:784].view(1, 28, 28)
    x = to_model_range(u)
    assert x.shape == (1, 1, 28, 28) and x.min() == -1 and x.max() <= 1
    assert torch.equal(to_uint8(x), u)


def test_parse_class():
    assert parse_class("Sneaker") == 7 and parse_class("ankle boot") == 9 and parse_class("ankle-boot") == 9
    assert parse_class("t-shirt") == 0 and parse_class("3") == 3 and len(CLASS_NAMES) == 10
    for bad in ("sock", "10", "-1"):
        with pytest.raises(ValueError, match="unknown class"):
            parse_class(bad)
