"""A plain, non-editable `pip install .` carries the shipped weights (as package data), so the
main command works from any folder without the repo."""
import os
import subprocess
import sys


def test_wheel_install_samples_from_another_folder(source_tree, tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(source_tree)], check=True, timeout=300)
    assert (site / "fmnist_ldm" / "model" / "unet.safetensors").is_file()
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-m", "fmnist_ldm", "sample", "--n-per-class", "1", "--steps", "2",
                        "--out", "x.png"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "x.png").stat().st_size > 1000
    where = subprocess.run([sys.executable, "-c", "import fmnist_ldm.weights as w; print(w.MODEL_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(site / "fmnist_ldm" / "model")        # the wheel's copy, not the checkout's
