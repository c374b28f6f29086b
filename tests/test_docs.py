"""The README starts the course; the model card stays a model card; the links resolve."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_the_course_front_page_in_order():
    text = (ROOT / "README.md").read_text()
    order = ["## The course", "## Two commands", "## Results", "## Links"]
    at = [text.find(h + "\n") for h in order]
    assert all(i > 0 for i in at) and at == sorted(at), dict(zip(order, at))
    course = text[at[0]:at[1]]
    for nb in sorted((ROOT / "notebooks").glob("0*.ipynb")):           # a row, a Colab badge, a time
        row = next((line for line in course.splitlines() if f"(notebooks/{nb.name})" in line), None)
        assert row and f"blob/main/notebooks/{nb.name}" in row, f"{nb.name} has no row with a Colab badge"
        assert re.search(r"\| [\d.]+ (s|min) \|", row), f"{nb.name}: no measured time in its row"


def test_model_card_has_the_usual_headings_and_stays_short():
    card = (ROOT / "model" / "README.md").read_text()
    for heading in ["## Intended use", "## Training data", "## Training procedure", "## Evaluation", "## Limitations"]:
        assert heading + "\n" in card, heading
    assert len(card.encode()) < 6000, f"model card is {len(card.encode())} bytes"


def test_relative_links_in_the_docs_point_at_files_that_exist():
    for doc in ["README.md", "model/README.md", "benchmarks/README.md"]:
        base = (ROOT / doc).parent
        for target in re.findall(r"\]\((?!https?://|#)([^)#\s]+)", (ROOT / doc).read_text()):
            assert (base / target).exists(), f"{doc} links to {target}, which does not exist"
