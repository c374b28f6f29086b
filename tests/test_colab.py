"""Colab, simulated: each notebook alone in an empty folder, a stub `google.colab` module, and a
kernel whose Python has every dependency but not this package. The notebook's first cell must
fetch the course (FMNIST_LDM_REPO points at a git repo of this working tree, so nothing is
downloaded) and the notebook must run top to bottom, in fast mode, under nbval."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fmnist_ldm.course.notebook import SETUP_CELL

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb"))
pytestmark = pytest.mark.colab


@pytest.fixture
def colab(tmp_path_factory, source_tree):
    """(environment, kernel name) of a Colab-like kernel: a fresh venv that sees this venv's
    packages through a path entry (so their .pth files, including the editable install of
    fmnist_ldm, are not run), plus a stub google.colab. A new one for each notebook, as Colab
    gives each notebook its own runtime: the first notebook's `pip install -e` must not let the
    next one skip its own setup."""
    base = tmp_path_factory.mktemp("colab")
    kenv = base / "kenv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(kenv)], check=True)
    kpy = kenv / "bin" / "python"
    ksite = subprocess.run([str(kpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           check=True, capture_output=True, text=True).stdout.strip()
    Path(ksite, "parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    stub = base / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stands in for Colab\'s module: its presence says \'in Colab\'."""\n')
    kernels = base / "jupyter" / "kernels" / "colab-sim"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(kpy), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab (simulated)", "language": "python"}))
    probe = subprocess.run([str(kpy), "-c", "import importlib.util as u; print(u.find_spec('fmnist_ldm'))"],
                           capture_output=True, text=True, cwd=base, env={**os.environ, "PYTHONPATH": ""})
    assert probe.stdout.strip() == "None", "the simulated Colab kernel must not see this checkout"
    env = {**os.environ, "PYTHONPATH": str(base / "stub"), "JUPYTER_PATH": str(base / "jupyter"),
           "FMNIST_LDM_REPO": source_tree.as_uri(), "FMNIST_LDM_MODE": "fast",
           # the package's own install: no index, no isolated build env (its deps are all here)
           "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    return env, "colab-sim"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_bare_notebook_runs_in_simulated_colab(colab, nb, tmp_path):
    env, kernel = colab
    alone = tmp_path / nb.name
    shutil.copy(nb, alone)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                        f"--nbval-kernel-name={kernel}", "--rootdir", str(tmp_path), alone.name],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert (tmp_path / "fmnist-ldm" / "model" / "unet.safetensors").is_file()   # the course was fetched


def test_every_notebook_starts_with_the_setup_cell():
    """The Colab cell lives once, in fmnist_ldm.course.notebook.SETUP_CELL (with the repo URL); each
    notebook carries a verbatim copy as its first code cell."""
    import jupytext
    for nb in NOTEBOOKS:
        first = next(c for c in jupytext.read(nb).cells if c.cell_type == "code")
        assert first.source.strip() == SETUP_CELL.strip(), f"{nb.name}: first code cell is not notebook.SETUP_CELL"


def _run_setup_cell(cwd, env, python_flags=()):
    script = SETUP_CELL + "\nprint('CWD', os.getcwd())"
    return subprocess.run([sys.executable, *python_flags, "-c", script], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_a_failed_clone_says_what_failed_and_what_to_do(tmp_path):
    """Not a bare CalledProcessError: the command, git's own words, and what to check."""
    r = _run_setup_cell(tmp_path, {"FMNIST_LDM_REPO": str(tmp_path / "no-such-repo")}, ("-S",))   # -S: no package
    assert r.returncode != 0 and "CalledProcessError" not in r.stderr
    assert "RuntimeError: Setup failed: `git clone --depth 1" in r.stderr and "no-such-repo" in r.stderr
    assert "Check the internet connection" in r.stderr and not (tmp_path / "fmnist-ldm").exists()


def test_after_a_restart_the_setup_cell_moves_back_into_the_course(tmp_path):
    """Colab's Restart session: the package is installed, the kernel starts in /content again."""
    (tmp_path / "fmnist-ldm" / "notebooks").mkdir(parents=True)
    r = _run_setup_cell(tmp_path, {})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(str(tmp_path / "fmnist-ldm" / "notebooks"))
    r = _run_setup_cell(tmp_path / "fmnist-ldm" / "notebooks", {})      # in a checkout: stays put
    assert r.stdout.strip().endswith(str(tmp_path / "fmnist-ldm" / "notebooks"))
