"""What commands leave behind in the checkout: ignored, or cleaned before a CI run."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"), reason="not a git checkout")
@pytest.mark.parametrize("path", ["samples.png", "samples.npz", "samples_ddim.png", "notebooks/runs/x.gif"])
def test_cli_and_notebook_outputs_are_ignored(path):
    """The README's `python -m fmnist_ldm sample --out samples.png` writes into the repo root."""
    r = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
    assert r.returncode == 0, f"{path} is not git-ignored"


def test_ci_starts_the_notebooks_from_scratch():
    """Notebooks 02 and 04 resume checkpoints from notebooks/runs/: a CI run must not inherit any."""
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    clean = [i for i, line in enumerate(lines) if line.strip().startswith("rm -rf notebooks/runs")]
    pytest_ = [i for i, line in enumerate(lines) if line.strip().startswith("python -m pytest")]
    assert clean and pytest_ and clean[0] < pytest_[0]


def test_shipped_weights_stay_within_their_size_budget():
    """model/ travels with every clone and every wheel: 30 MB at most (VAE, UNet, judge, student)."""
    size = sum(p.stat().st_size for p in (ROOT / "model").iterdir() if p.is_file())
    assert size <= 30 * 2**20, f"model/ holds {size / 2**20:.1f} MB"
