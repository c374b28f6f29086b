import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("FMNIST_THREADS", 0)) or os.cpu_count() or 1)


@pytest.fixture
def tiny_cfg(tmp_path):
    """A config small enough for unit tests (random weights, no data needed)."""
    from fmnist_ldm.config import preset
    return preset("fast", vae_channels=(8, 8, 16), unet_channels=(16, 32), out_dir=str(tmp_path / "run"))


@pytest.fixture
def tiny_model_dir(tmp_path, tiny_cfg):
    """A model folder with untrained but valid VAE and UNet weights files."""
    from fmnist_ldm.weights import build_unet, build_vae, save_weights
    torch.manual_seed(0)
    d = tmp_path / "model"
    save_weights(build_vae(tiny_cfg), d / "vae.safetensors", "vae", tiny_cfg)
    save_weights(build_unet(tiny_cfg), d / "unet.safetensors", "unet", tiny_cfg)
    return d


@pytest.fixture(scope="session")
def source_tree(tmp_path_factory):
    """A git repo holding this checkout's working tree (tracked files and new, not ignored ones):
    what a fresh clone would get if the work were committed. For the install and Colab tests."""
    import shutil
    import subprocess
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    dest = tmp_path_factory.mktemp("source") / "fmnist-ldm"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for f in filter(None, files):
        if (root / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, dest / f)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "init.defaultBranch=main"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "working tree"]):
        subprocess.run(git + cmd, cwd=dest, check=True)
    return dest
