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


# --- broken files: each names the file and what to do (issue 18) ---

def _write_set(folder, gz=True, n_test=10_000):
    """Four small-but-valid IDX files (zeros: they compress to almost nothing). The train files
    are tiny: only the test split is read in these tests, the train files need only exist."""
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    for stem, arr in (("train-images-idx3-ubyte", np.zeros((1, 28, 28))), ("train-labels-idx1-ubyte", np.zeros(1)),
                      ("t10k-images-idx3-ubyte", np.zeros((n_test, 28, 28))), ("t10k-labels-idx1-ubyte", np.zeros(n_test))):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        body = header + arr.astype(np.uint8).tobytes()
        (folder / (stem + sfx)).write_bytes(gzip.compress(body) if gz else body)
    return folder


def _broken(path, needle):
    """load_fashion_mnist('test') from the folder of `path` fails with a DataError naming `path`."""
    with pytest.raises(data.DataError) as e:
        load_fashion_mnist("test", root=path.parent, download=False)
    msg = str(e.value)
    assert isinstance(e.value, ValueError)           # what the CLI turns into one line, exit 2
    assert str(path) in msg and needle in msg and "\n" not in msg
    return msg


def test_truncated_gz_is_named(tmp_path):
    f = _write_set(tmp_path) / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    msg = _broken(f, "truncated or corrupt")
    assert "download" in msg                      # an explicit folder: get a fresh copy


def test_garbage_gz_is_named(tmp_path):
    f = _write_set(tmp_path) / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(b"<html>404 not found</html>" * 40)
    _broken(f, "not a gzip file")


def test_truncated_raw_idx_is_named(tmp_path):
    f = _write_set(tmp_path, gz=False) / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-16])
    _broken(f, "truncated")


def test_wrong_magic_is_named(tmp_path):
    f = _write_set(tmp_path) / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(gzip.compress(b"\x89PNG\r\n\x1a\n" + bytes(100)))
    _broken(f, "not a uint8 IDX file")


def test_header_claiming_more_items_than_the_file_holds(tmp_path):
    f = _write_set(tmp_path) / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (10_000).to_bytes(4, "big") + bytes(100)))
    _broken(f, "10000 items")


def test_a_split_of_the_wrong_size_names_the_file(tmp_path):
    f = _write_set(tmp_path, n_test=500) / "t10k-images-idx3-ubyte.gz"
    _broken(f, "(10000, 28, 28)")


def test_broken_file_in_debian_or_cache_folder_says_how_to_repair_it(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    for where, needle in (("DEBIAN_DIR", "as root, or with sudo: apt-get install --reinstall dataset-fashion-mnist"),
                          ("CACHE_DIR", "delete the folder")):
        folder = _write_set(tmp_path / where)
        (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
        monkeypatch.setattr(data, "DEBIAN_DIR", folder if where == "DEBIAN_DIR" else tmp_path / "none")
        monkeypatch.setattr(data, "CACHE_DIR", folder if where == "CACHE_DIR" else tmp_path / "none")
        with pytest.raises(data.DataError) as e:
            load_fashion_mnist("test", download=False)
        assert needle in str(e.value) and str(folder) in str(e.value)


def test_a_file_replaced_on_disk_is_read_again_not_served_from_the_cache(tmp_path):
    folder = _write_set(tmp_path)
    assert load_fashion_mnist("test", root=folder)[0].shape == (10_000, 28, 28)
    f = folder / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(b"garbage now")
    _broken(f, "not a gzip file")


def test_cli_train_on_a_broken_file_is_one_line_exit_2(tmp_path, capsys):
    from fmnist_ldm.cli import main
    folder = _write_set(tmp_path / "data")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "fast", "--data-dir", str(folder), "--out-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "train-images-idx3-ubyte.gz" in err


def test_not_found_message_works_without_sudo(tmp_path, monkeypatch):
    """A root container has no sudo: the message must not tell users to type it."""
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    with pytest.raises(DataNotFoundError) as e:
        load_fashion_mnist("train", download=False)
    assert "as root, or with sudo: apt-get install dataset-fashion-mnist" in str(e.value)
    assert "sudo apt-get" not in str(e.value)


def test_class_statistics_and_the_nearest_mean_classifier():
    from fmnist_ldm.data import class_means, class_spread, nearest_mean
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 5, 6), generator=g, dtype=torch.uint8)
    labels = torch.arange(30) % 3
    means, spread = class_means(images, labels, 3), class_spread(images, labels, 3)
    assert means.shape == spread.shape == (3, 5, 6)
    members = images[labels == 1].double()
    torch.testing.assert_close(means[1].double(), members.mean(0), rtol=1e-6, atol=1e-4)
    torch.testing.assert_close(spread[1].double(), ((members - members.mean(0)) ** 2).sum(0).div(9).sqrt(), rtol=1e-5, atol=1e-4)
    # each mean is nearest to itself; an image nudged towards mean 2 is classed 2
    assert nearest_mean(means, means).tolist() == [0, 1, 2]
    assert nearest_mean((0.1 * means[0] + 0.9 * means[2])[None], means).tolist() == [2]
