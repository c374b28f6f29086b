"""The lecture deck: paired with its .py, stripped, and it runs, with every number read from what
the course recorded (a renamed metadata key or benchmark field breaks it here, not in class); its
committed HTML is made from the current deck and the files it reads, with every picture inside."""
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from fmnist_ldm.course import deck

DECK = deck.DECK
ROOT = deck.ROOT


def slide_type(cell):
    return cell.metadata.get("slideshow", {}).get("slide_type", "-")


def test_the_deck_is_paired_and_stripped():
    from fmnist_ldm.course.record import in_sync_with_twin
    assert in_sync_with_twin(DECK), f"run `jupytext --sync {DECK}`"
    assert not any(c.get("outputs") for c in nbformat.read(DECK, 4).cells), f"run `nbstripout {DECK}`"


def test_each_notebook_has_its_slides_and_each_slide_its_notes():
    cells = nbformat.read(DECK, 4).cells
    slides = [i for i, c in enumerate(cells) if slide_type(c) == "slide"]
    for nb_number in ("01", "02", "03", "04", "05", "06", "07"):   # one to four slides per notebook
        assert 1 <= sum(cells[i].source.startswith(f"## {nb_number} ·") for i in slides) <= 4, nb_number
    for start, end in zip(slides, slides[1:] + [len(cells)]):
        notes = [c for c in cells[start:end] if slide_type(c) == "notes"]
        assert notes and all(c.cell_type == "markdown" and len(c.source) > 80 for c in notes), \
            f"the slide {cells[start].source.splitlines()[0]!r} has no speaker notes"


def test_no_number_is_typed_into_a_slide():
    """Numbers on a slide come from files (printed by the code cells); its Markdown holds none,
    except the notebook's number in the title, equation numbers and the equations themselves."""
    for cell in nbformat.read(DECK, 4).cells:
        if cell.cell_type != "markdown" or slide_type(cell) in ("skip", "notes"):
            continue
        text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", "", cell.source, flags=re.S)      # equations
        text = re.sub(r"^## 0\d · ", "", text, flags=re.M)                        # "## 05 · ..."
        text = re.sub(r"\((\d)\)", "", text)                                       # "(1)": equation numbers
        text = re.sub(r"notebooks? 0\d|\b0\d\b", "", text)                        # "notebook 05"
        assert not re.search(r"\d", text), f"a number typed into a slide: {cell.source[:200]!r}"


def test_the_deck_reads_only_files_it_declares():
    """Every file deck.py reads is in course.deck.INPUTS, so a change to it makes the HTML stale."""
    source = DECK.with_suffix(".py").read_text()
    named = re.findall(r"""["'f]((?:model|benchmarks|assets)/[^"']+)["']""", source)
    named += [f"notebooks/{n}" for n in re.findall(r"""recorded_output\(["']([^"']+\.ipynb)""", source)]
    assert named
    for name in named:
        pattern = re.escape(name).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[^}]*\}", ".+", pattern)
        assert any(re.fullmatch(pattern, i) for i in deck.INPUTS), f"deck.py reads {name}, not in course.deck.INPUTS"
    assert all((ROOT / i).is_file() for i in deck.INPUTS)


def test_the_deck_runs_and_shows_its_figures():
    nb = nbformat.read(DECK, 4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(DECK.parent)}}).execute()
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    pictures = sum("image/png" in o.get("data", {}) for o in outputs) + \
        sum(o.get("data", {}).get("text/html", "").count('<img src="data:image/') for o in outputs)
    assert pictures >= 15, pictures
    from fmnist_ldm.course.record import placeholder
    assert not [o for o in outputs if o.output_type in ("display_data", "execute_result") and placeholder(o)]


def test_the_committed_html_is_fresh_and_self_contained():
    assert not deck.problems(), "\n".join(deck.problems())
    html = deck.HTML.read_text(encoding="utf-8")
    notes = re.findall(r'<aside class="notes">', html)
    assert len(notes) == sum(slide_type(c) == "notes" for c in nbformat.read(DECK, 4).cells)
    assert html.count('src="data:image/') >= 15


def test_the_check_sees_a_stale_deck_and_a_local_link():
    html = deck.HTML.read_text(encoding="utf-8")
    assert deck.problems(html) == []
    stale = re.sub(r'(<meta name="fmnist_ldm-deck-sources" content=")[0-9a-f]{64}', r"\g<1>" + "0" * 64, html)
    assert "stale" in " ".join(deck.problems(stale))
    linked = html.replace("</body>", '<img src="../assets/generated_samples.png"></body>')
    assert "links to a local file: ../assets/generated_samples.png" in " ".join(deck.problems(linked))


@pytest.mark.parametrize("changed", ["deck", "input"])
def test_the_hash_covers_the_deck_and_its_inputs(changed, tmp_path, monkeypatch):
    before = deck.sources_hash()
    if changed == "deck":
        nb = jupytext.read(DECK)
        nb.cells[-1].source += " More."
        copy = tmp_path / "deck.ipynb"
        nbformat.write(nb, copy)
        monkeypatch.setattr(deck, "DECK", copy)
    else:
        (tmp_path / "benchmarks").mkdir()
        for name in deck.INPUTS:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes((ROOT / name).read_bytes())
        (tmp_path / "benchmarks/distill.json").write_text((ROOT / "benchmarks/distill.json").read_text() + " ")
        monkeypatch.setattr(deck, "ROOT", Path(tmp_path))
    assert deck.sources_hash() != before
