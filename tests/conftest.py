import os
import sys
from pathlib import Path

import pytest
import torch

# Test the package of the checkout these tests live in, whatever the working directory and
# whichever copy of fmnist_ldm is installed (e.g. an editable install of another clone).
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

torch.set_num_threads(int(os.environ.get("FMNIST_THREADS", 0)) or os.cpu_count() or 1)


def pytest_collection_modifyitems(items):
    """Run order: unit tests, the notebooks (nbval), then the slow end-to-end runs: each notebook in
    a simulated Colab, and the browser test last. A failing unit test then shows first, and says
    more than a notebook or a browser timing out."""
    rank = lambda item: 3 if item.get_closest_marker("browser") else 2 if item.get_closest_marker("colab") \
        else 1 if item.path.suffix == ".ipynb" else 0
    items.sort(key=rank)                 # stable: file order within each group


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
    unet = build_unet(tiny_cfg)
    # A new UNet's output conv is zero (so training starts from "predict 0"): such a model ignores
    # x, t and the class, and tests sampling with it could not see guidance or a wrong timestep.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in unet.out[-1].parameters():
            p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    save_weights(unet, d / "unet.safetensors", "unet", tiny_cfg)
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


class CheapUNet(torch.nn.Module):
    """Stands in for the UNet where only the sampling loop is under test (1,000-step runs): cheap,
    yet its output depends on x, t and the class."""

    def forward(self, x, t, y):
        return 0.1 * x + 1e-4 * t.view(-1, 1, 1, 1) + 0.01 * y.view(-1, 1, 1, 1)


@pytest.fixture
def cheap_pipe(tiny_model_dir):
    """The tiny model's pipeline (its VAE decodes) with CheapUNet in place of its UNet."""
    from fmnist_ldm.pipeline import Pipeline
    pipe = Pipeline.from_pretrained(tiny_model_dir)
    pipe.unet = CheapUNet()
    return pipe
