"""A plain, non-editable `pip install .` carries the shipped weights (as package data) and every
module of the package, so the main command works from any folder without the repo."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# Run in the installed environment: every module of the installed fmnist_ldm, imported (but not
# __main__, which is the command itself). A sub-package that fails to import is an error, not skipped.
IMPORT_EVERY_MODULE = """
import importlib, pkgutil, fmnist_ldm
def fail(name):
    raise
names = [m.name for m in pkgutil.walk_packages(fmnist_ldm.__path__, "fmnist_ldm.", onerror=fail)]
for name in names:
    if name != "fmnist_ldm.__main__":
        importlib.import_module(name)
print(fmnist_ldm.__file__)
print("\\n".join(names))
"""


def modules_in(folder: Path) -> set[str]:
    """The dotted names of the modules and packages in a source folder of fmnist_ldm."""
    names = set()
    for path in folder.rglob("*.py"):
        parts = ("fmnist_ldm",) + path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:
            names.add(".".join(parts))
    return names


@pytest.fixture(scope="module")
def wheel(source_tree, tmp_path_factory):
    """The wheel of this working tree, built as `pip install .` builds it (no index, no isolated
    build environment: setuptools is here)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(out), str(source_tree)], check=True, timeout=300)
    return next(out.glob("fmnist_ldm-*.whl"))


def test_wheel_install_samples_from_another_folder(wheel, tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    str(wheel)], check=True, timeout=300)
    assert (site / "fmnist_ldm" / "model" / "unet.safetensors").is_file()
    assert (site / "fmnist_ldm" / "lab_page" / "index.html").is_file()              # the lab's page
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-m", "fmnist_ldm", "sample", "--n-per-class", "1", "--steps", "2",
                        "--out", "x.png"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (elsewhere / "x.png").stat().st_size > 1000
    where = subprocess.run([sys.executable, "-c", "import fmnist_ldm.weights as w; print(w.MODEL_DIR)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert where == str(site / "fmnist_ldm" / "model")        # the wheel's copy, not the checkout's


def test_the_wheel_holds_and_imports_every_module(wheel, source_tree, tmp_path):
    """The wheel installed in a fresh virtual environment, run from another folder: every module
    and sub-package of fmnist_ldm/ is there and imports. The fresh environment sees this one's
    packages (torch and the rest) through a path entry, so that none of their .pth files run: the
    editable install of this checkout is one, and it would stand in for a sub-package the wheel lacks."""
    venv, elsewhere = tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([python, "-c", IMPORT_EVERY_MODULE], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    where, *installed = r.stdout.split()
    assert Path(where).is_relative_to(site), f"fmnist_ldm came from {where}, not the wheel"
    missing = modules_in(source_tree / "fmnist_ldm") - set(installed)
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert {"fmnist_ldm.course.exercises", "fmnist_ldm.course.record"} <= set(installed)
