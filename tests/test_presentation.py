"""The lecture deck: paired with its .py, stripped, and it runs, with every number read from what
the course recorded (a renamed metadata key or benchmark field breaks it here, not in class)."""
from pathlib import Path

import nbformat
from nbclient import NotebookClient

DECK = Path(__file__).resolve().parent.parent / "presentation" / "deck.ipynb"


def test_the_deck_is_paired_and_stripped():
    from fmnist_ldm.course.record import in_sync_with_twin
    assert in_sync_with_twin(DECK), f"run `jupytext --sync {DECK}`"
    assert not any(c.get("outputs") for c in nbformat.read(DECK, 4).cells), f"run `nbstripout {DECK}`"


def test_the_deck_runs_and_shows_its_figures():
    nb = nbformat.read(DECK, 4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(DECK.parent)}}).execute()
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5
    slides = [c for c in nb.cells if c.metadata.get("slideshow", {}).get("slide_type") == "slide"]
    for nb_number in ("01", "02", "03", "04", "05", "06", "07"):   # one slide or two per notebook
        assert 1 <= sum(c.source.startswith(f"## {nb_number} ·") for c in slides) <= 2, nb_number
