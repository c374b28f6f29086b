"""The command line: outputs, determinism, and one-line errors with exit code 2."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from fmnist_ldm.cli import main
from fmnist_ldm.pipeline import MODEL_DIR, Pipeline


def run_cli(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    return e.value.code, capsys.readouterr()


@pytest.mark.parametrize("args,needle", [
    (["--class", "sock"], "unknown class"),
    (["--steps", "0"], "at least 1"),
    (["--out", "/nonexistent-dir/x.png"], "does not exist"),
    (["--out", "samples.jpg"], ".png or .npz"),
])
def test_bad_input_is_one_line_exit_2(capsys, tiny_model_dir, args, needle):
    code, out = run_cli(capsys, "sample", "--model-dir", str(tiny_model_dir), *args)
    assert code == 2 and needle in out.err
    assert out.err.startswith("error:") and out.err.count("\n") == 1


def test_train_rejects_a_zero_width_latent(capsys):
    code, out = run_cli(capsys, "train", "--latent-channels", "0")
    assert code == 2 and out.err.startswith("error:") and "at least 1" in out.err


def test_train_passes_the_latent_width_on(monkeypatch, capsys, tmp_path):
    import fmnist_ldm.train
    configs = []
    monkeypatch.setattr(fmnist_ldm.train, "train_all", lambda cfg, device=None: configs.append(cfg) or {})
    main(["train", "--preset", "fast", "--latent-channels", "8", "--out-dir", str(tmp_path)])
    main(["train", "--preset", "fast", "--out-dir", str(tmp_path)])
    assert [c.latent_channels for c in configs] == [8, 4] and configs[0].out_dir == str(tmp_path)


def test_missing_and_foreign_weights(capsys, tmp_path, tiny_model_dir):
    code, out = run_cli(capsys, "sample", "--model-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "a.png"))
    assert code == 2 and "does not exist" in out.err
    (tiny_model_dir / "unet.safetensors").write_bytes(b"not a weights file at all")
    code, out = run_cli(capsys, "sample", "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "a.png"))
    assert code == 2 and "not a safetensors" in out.err
    vae = tiny_model_dir / "vae.safetensors"
    (tiny_model_dir / "unet.safetensors").write_bytes(vae.read_bytes())    # right format, wrong model
    code, out = run_cli(capsys, "sample", "--model-dir", str(tiny_model_dir), "--out", str(tmp_path / "a.png"))
    assert code == 2 and "vae weights, not unet" in out.err


def test_npz_has_exactly_images_and_labels(capsys, tmp_path, tiny_model_dir):
    out = tmp_path / "s.npz"
    main(["sample", "--model-dir", str(tiny_model_dir), "--class", "Bag", "--n-per-class", "3",
          "--steps", "2", "--out", str(out)])
    with np.load(out) as f:
        assert sorted(f.files) == ["images", "labels"]
        assert f["images"].dtype == np.uint8 and f["images"].shape == (3, 28, 28)
        assert f["labels"].dtype == np.int64 and f["labels"].tolist() == [8, 8, 8]


def test_same_seed_same_images(tiny_model_dir):
    pipe = Pipeline.from_pretrained(tiny_model_dir)
    a = pipe.generate([0, 5, 10], steps=3, seed=7).images
    b = pipe.generate([0, 5, 10], steps=3, seed=7).images
    c = pipe.generate([0, 5, 10], steps=3, seed=8).images
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shipped_weights_make_a_labelled_grid(tmp_path):
    """The README's main command, end to end in a fresh process, from the weights in model/."""
    out = tmp_path / "grid.png"
    r = subprocess.run([sys.executable, "-m", "fmnist_ldm", "sample", "--n-per-class", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=300, cwd=MODEL_DIR.parent)
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 5000 and "wrote 20 images" in r.stdout


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp2m"])
def test_sample_at_61_steps(tmp_path, tiny_model_dir, sampler):
    """61 steps used to end the timesteps with -1, -1: DDIM died dividing by zero."""
    out = tmp_path / "s.npz"
    main(["sample", "--model-dir", str(tiny_model_dir), "--class", "Bag", "--n-per-class", "2",
          "--sampler", sampler, "--steps", "61", "--out", str(out)])
    with np.load(out) as f:
        assert f["images"].shape == (2, 28, 28)


@pytest.mark.parametrize("args,needle", [
    ([], "dpmpp2m, 20 steps, 28 UNet passes per image: guidance 5 on 8 of the 20 steps, t in [300, 700]"),
    (["--sampler", "ddpm"], "ddpm, 1000 steps (ddpm takes every timestep; --steps does not apply), "
                            "1401 UNet passes per image: guidance 5 on 401 of the 1000 steps"),
    (["--sampler", "ddim", "--steps", "7", "--guidance-interval", "none"],
     "ddim, 7 steps, 14 UNet passes per image: guidance 5 on 7 of the 7 steps"),
    (["--class", "none"], "dpmpp2m, 20 steps, 20 UNet passes per image: no guidance (unconditional)"),
    (["--guidance", "1"], "dpmpp2m, 20 steps, 20 UNet passes per image: no guidance (scale 1)"),
])
def test_the_closing_line_says_what_ran(monkeypatch, capsys, tmp_path, cheap_pipe, args, needle):
    """Steps and UNet passes as counted during the run: DDPM used to be reported as '20 steps'."""
    monkeypatch.setattr(Pipeline, "from_pretrained", classmethod(lambda cls, *a, **k: cheap_pipe))
    main(["sample", "--class", "Bag", "--n-per-class", "2", "--out", str(tmp_path / "s.npz"), *args])
    out = capsys.readouterr().out
    assert out.startswith("wrote 2 images") and needle in out, out
