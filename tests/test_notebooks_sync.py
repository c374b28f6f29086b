"""Each notebook is in sync with its jupytext percent .py twin (what reviewers diff, output-free), and
its outputs, if it holds any, are clean and were made from its current sources (fmnist_ldm.course.record)."""
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    for n in ("01_data", "02_vae", "03_unet", "04_diffusion_training", "05_application", "06_evaluation"):
        assert n in names


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_paired_and_outputs_if_any_clean_and_fresh(nb_path):
    from fmnist_ldm.course import record
    assert record.in_sync_with_twin(nb_path), f"{nb_path.name} and its .py differ: run `jupytext --sync {nb_path}`"
    problems = record.check(nb_path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_opens_each_notebook_on_a_gpu(nb_path):
    """Colab reads "accelerator" from the notebook's metadata: without it, a CPU runtime opens."""
    import json
    from fmnist_ldm.course.notebook import COLAB_METADATA
    meta = json.loads(nb_path.read_text())["metadata"]
    assert {k: meta.get(k) for k in COLAB_METADATA} == COLAB_METADATA
