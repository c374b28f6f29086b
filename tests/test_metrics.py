"""The judge and the metrics on real data, and the evaluate command's input checks."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fmnist_ldm.cli import main
from fmnist_ldm.data import load_fashion_mnist
from fmnist_ldm.evaluate import read_samples
from fmnist_ldm.metrics import (JUDGE_FILE, class_accuracy, fid_infinity, fid_kid, fid_over_n, load_judge,
                                reconstruction_metrics)
from fmnist_ldm.pipeline import MODEL_DIR
from fmnist_ldm.weights import load_model, read_weights

ROOT = MODEL_DIR.parent       # subprocesses run the checkout's package, whatever the cwd


@pytest.fixture(scope="module")
def judge():
    return load_judge()


@pytest.fixture(scope="module")
def real():
    return load_fashion_mnist("train")[0][:2000], load_fashion_mnist("test")


def blur(images_uint8):
    x = images_uint8.float()[:, None]
    k = torch.ones(1, 1, 5, 5) / 25
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k)[:, 0].round().to(torch.uint8)


def test_judge_accuracy_on_real_test(judge, real):
    test_x, test_y = real[1]
    acc = class_accuracy(judge, test_x, test_y)
    recorded = read_weights(JUDGE_FILE, "judge")[2]["test_accuracy"]
    assert acc["accuracy"] >= 0.93 and abs(acc["accuracy"] - recorded) < 1e-3
    assert len(acc["per_class_accuracy"]) == 10


def test_fid_real_vs_real_is_small_and_blur_is_far_worse(judge, real):
    train, (test_x, _) = real
    base = fid_kid(test_x[:2000], train, judge)
    blurred = fid_kid(test_x[:2000], blur(train), judge)
    assert base["fid"] < blurred["fid"] / 5 and base["kid"] < blurred["kid"] / 5
    assert abs(base["kid"]) < 0.01


def test_fid_infinity_recovers_the_intercept_of_a_1_over_n_law():
    ns = [500, 1000, 2000, 5000]
    assert fid_infinity(ns, [0.3 + 1500 / n for n in ns]) == pytest.approx(0.3, abs=1e-9)


def test_fid_bias_falls_with_n_on_real_data(judge, real):
    """Real train vs real test: FID shrinks as n grows, towards an intercept near 0."""
    train, (test_x, _) = real
    ns = [500, 1000, 2000]
    fids = fid_over_n(test_x, train, judge, ns)
    assert fids[0] > fids[1] > fids[2]
    assert abs(fid_infinity(ns, fids)) < 0.5 * fids[-1]


def test_shipped_vae_reconstructs(real):
    vae, cfg = load_model(MODEL_DIR / "vae.safetensors", "vae")     # not relative to the cwd
    m = reconstruction_metrics(vae, real[1][0][:1000], cfg)
    assert m["psnr"] > 24 and m["ssim"] > 0.9 and m["mse"] < 0.004


def test_pipeline_reconstruct_round_trips_in_batches(real):
    from fmnist_ldm.pipeline import Pipeline
    x = real[1][0][:200]
    rec = Pipeline.from_pretrained().reconstruct(x, batch=64)           # 64 does not divide 200
    assert rec.dtype == torch.uint8 and rec.shape == x.shape
    assert ((rec.float() - x.float()) / 255).pow(2).mean() < 0.004


@pytest.mark.parametrize("arrays,needle", [
    ({"images": np.zeros((4, 28, 28), np.uint8)}, "exactly 'images' and 'labels'"),
    ({"images": np.zeros((4, 28, 28), np.float32), "labels": np.zeros(4, np.int64)}, "uint8"),
    ({"images": np.zeros((4, 32, 32), np.uint8), "labels": np.zeros(4, np.int64)}, "(N, 28, 28)"),
    ({"images": np.zeros((4, 28, 28), np.uint8), "labels": np.zeros(3, np.int64)}, "int64 of shape (4,)"),
    ({"images": np.zeros((4, 28, 28), np.uint8), "labels": np.full(4, 11, np.int64)}, "0-9"),
])
def test_samples_file_validation(tmp_path, arrays, needle):
    path = tmp_path / "s.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError) as e:
        read_samples(path)
    assert needle in str(e.value)


def test_evaluate_cli_bad_file_exits_2(tmp_path, capsys):
    (tmp_path / "junk.npz").write_text("junk")
    for path in (tmp_path / "junk.npz", tmp_path / "missing.npz"):
        with pytest.raises(SystemExit) as e:
            main(["evaluate", "--samples", str(path)])
        assert e.value.code == 2 and capsys.readouterr().err.startswith("error:")


def test_sample_then_evaluate_end_to_end(tmp_path):
    out = tmp_path / "s.npz"
    cmd = [sys.executable, "-m", "fmnist_ldm"]
    # 520: just above evaluate's floor of 2 x 256 images (below 2,000 it warns on stderr)
    subprocess.run(cmd + ["sample", "--n-per-class", "52", "--out", str(out)], check=True, timeout=300,
                   capture_output=True, cwd=ROOT)
    r = subprocess.run(cmd + ["evaluate", "--samples", str(out)], capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert {"fid", "fid_real_baseline", "kid", "accuracy", "per_class_accuracy", "n"} <= set(res)
    assert res["n"] == 520 and res["accuracy"] > 0.8 and r.stderr.startswith("warning: FID at n = 520")


def test_kid_mmd_is_torchmetrics_poly_mmd_at_equal_sizes_and_unbiased_at_unequal_ones():
    from torchmetrics.image.kid import poly_mmd
    from fmnist_ldm.metrics import kid_mmd
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(40, 6, generator=g, dtype=torch.float64), torch.randn(40, 6, generator=g, dtype=torch.float64) + 0.5
    assert abs(kid_mmd(a, b) - poly_mmd(a, b).item()) < 1e-10
    assert kid_mmd(a, b) > 0.01 and abs(kid_mmd(a[:30], a[30:] * 1.0)) < kid_mmd(a, b)


def test_evaluation_draw_is_the_draw_evaluate_samples_makes():
    from fmnist_ldm.metrics import evaluation_draw
    d = evaluation_draw(600, 1000, 5000, seed=3)
    g = torch.Generator().manual_seed(3)
    assert d["n"] == 600 and torch.equal(d["test"], torch.randperm(1000, generator=g)[:600])
    assert torch.equal(d["samples"], torch.randperm(600, generator=g)) and torch.equal(d["train"], torch.randperm(5000, generator=g)[:600])
