"""The notebooks' committed outputs (fmnist_ldm/course/record.py): made from the sources they sit beside,
and clean enough to render anywhere. A notebook without outputs passes; once one has outputs, all
must. FMNIST_LDM_NOTEBOOKS=<folder> checks another folder's notebooks (e.g. executed copies)."""
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from fmnist_ldm.course import clean_outputs, record

NOTEBOOKS = sorted(record.notebook_dir().glob("0*.ipynb"))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_clean_and_made_from_the_current_sources(nb_path):
    problems = record.check(nb_path)
    assert not problems, "\n".join(problems)


def test_outputs_in_every_notebook_or_in_none():
    problems = record.check_together(NOTEBOOKS)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the rules, on made-up notebooks

def _executed(*outputs):
    """A notebook as the command leaves it: a markdown cell, then one code cell per output list."""
    cells = [new_markdown_cell("# A title")]
    for i, outs in enumerate(outputs, 1):
        cells.append(new_code_cell(f"x = {i}", execution_count=i, outputs=list(outs)))
    nb = new_notebook(cells=cells)
    nb.metadata[record.META] = {"source_sha256": record.source_hash(nb), "mode": "fast", "machine": "a CPU"}
    return nb


def _write(nb, path):
    import nbformat
    nbformat.write(nb, path)
    return path


def test_a_stripped_notebook_passes(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("# A title"), new_code_cell("x = 1")])
    assert not record.check(_write(nb, tmp_path / "01_a.ipynb"))


def test_one_changed_markdown_line_makes_the_outputs_stale(tmp_path):
    path = _write(_executed([new_output("stream", name="stdout", text="1\n")]), tmp_path / "01_a.ipynb")
    assert not record.check(path)
    nb = __import__("nbformat").read(path, as_version=4)
    nb.cells[0].source = "# Another title"
    problems = record.check(_write(nb, path))
    assert len(problems) == 1 and "01_a.ipynb: stale outputs" in problems[0]
    assert f"`python -m fmnist_ldm.record {path}`" in problems[0]
    # outputs that did not come from the command (no recorded hash) are stale too
    del nb.metadata[record.META]
    assert "were not recorded by the command" in record.check(_write(nb, path))[0]


def test_the_hash_covers_sources_and_cell_types_only():
    nb = _executed([new_output("stream", name="stdout", text="1\n")])
    h = record.source_hash(nb)
    nb.cells[1].outputs, nb.cells[1].execution_count, nb.metadata["x"] = [], None, 1
    nb.cells[1].metadata["tags"] = ["a"]
    assert record.source_hash(nb) == h
    nb.cells[0].cell_type = "raw"
    assert record.source_hash(nb) != h


def test_cleaning_keeps_what_a_reader_should_see(tmp_path):
    root = str(record.ROOT)
    nb = _executed(
        [new_output("stream", name="stdout", text="load\r 50%|#    | 1/2\r100%|##########| 2/2"),
         new_output("stream", name="stdout", text=" [00:01]\ndone\n")],
        [new_output("display_data", data={record.WIDGET: {"model_id": "abc", "version_major": 2},
                                          "text/plain": "VBox(children=(IntSlider(value=3),))"}),
         new_output("display_data", data={"text/plain": f"saved to {root}/notebooks/runs/a.png and {root}/model"})],
    )
    nb.metadata.widgets = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb.cells[1].metadata.execution = {"iopub.execute_input": "2026-12-01T12:00:00Z"}
    clean_outputs.clean(nb, record.ROOT / "notebooks")
    assert "widgets" not in nb.metadata and "execution" not in nb.cells[1].metadata
    assert [o.text for o in nb.cells[1].outputs] == ["100%|##########| 2/2 [00:01]\ndone\n"]
    assert [o.data for o in nb.cells[2].outputs] == [{"text/plain": "saved to runs/a.png and ../model"}]
    assert not record.output_problems(nb, "x.ipynb")


def test_a_widget_keeps_its_text_when_it_says_something():
    nb = _executed([new_output("display_data", data={record.WIDGET: {"model_id": "abc"}, "text/plain": "Bag, step 20/20"})])
    clean_outputs.clean(nb, record.ROOT / "notebooks")
    assert [o.data for o in nb.cells[1].outputs] == [{"text/plain": "Bag, step 20/20"}]


def test_figures_are_made_smaller_but_not_smaller_than_they_read(tmp_path):
    import base64
    import io

    from PIL import Image
    wide = Image.new("RGBA", (2000, 400), (255, 255, 255, 255))
    wide.paste((200, 30, 30, 255), (100, 100, 1900, 300))
    buf = io.BytesIO()
    wide.save(buf, "PNG")
    nb = _executed([new_output("display_data", data={"image/png": base64.b64encode(buf.getvalue()).decode(),
                                                      "text/plain": "<Figure size 2000x400 with 1 Axes>"})])
    clean_outputs.clean(nb, record.ROOT / "notebooks")
    img = Image.open(io.BytesIO(base64.b64decode(nb.cells[1].outputs[0].data["image/png"])))
    assert img.size == (clean_outputs.PNG_MAX_WIDTH, 280)
    assert img.convert("RGB").getpixel((700, 140)) == (200, 30, 30)


@pytest.mark.parametrize("case, said", [
    ("widget state", "metadata.widgets"), ("widget view", "a widget view"), ("carriage return", "a carriage return"),
    ("error", "an error output"), ("absolute path", "an absolute path"), ("home folder", "an absolute path"),
    ("windows path", "an absolute path"), ("timestamps", "execution timestamps"), ("order", "top to bottom"),
    ("size", "MB, more than 1.5 MB")])
def test_each_rule_is_enforced(case, said):
    stdout = lambda text: new_output("stream", name="stdout", text=text)
    outs = {"widget view": [new_output("display_data", data={record.WIDGET: {"model_id": "a"}})],
            "carriage return": [stdout(" 50%|#  |\r100%|###|\n")],
            "error": [new_output("error", ename="ValueError", evalue="no", traceback=[])],
            "absolute path": [stdout("weights in /opt/course/model/unet.safetensors\n")],
            "home folder": [stdout("cache: /root\n")],
            "windows path": [stdout(r"C:\Users\ana\course" + "\n")],
            "size": [stdout("x" * record.MAX_BYTES)]}.get(case, [stdout("ok\n")])
    nb = _executed(outs, [stdout("ok\n")])
    if case == "widget state":
        nb.metadata.widgets = {}
    if case == "timestamps":
        nb.cells[1].metadata.execution = {"iopub.status.busy": "2026-12-01T12:00:00Z"}
    if case == "order":
        nb.cells[2].execution_count = 5
    problems = record.output_problems(nb, "x.ipynb")
    assert len(problems) == 1 and said in problems[0], problems


def test_what_is_not_an_absolute_path_passes():
    text = ("see https://github.com/fmnist-ldm/fmnist-ldm/blob/main/README.md, step 10/20, 3.1 it/s,\n"
            "runs/notebooks-fast/vae.safetensors, ../model/unet.safetensors, x / 255, <b>bold</b>,\n"
            "found in: /usr/share/datasets/fashion-mnist\n")
    nb = _executed([new_output("stream", name="stdout", text=text),
                    new_output("display_data", data={"text/html": "<p>a</p><br/>", "text/plain": "a"})])
    assert not record.output_problems(nb, "x.ipynb")


def test_outputs_in_some_notebooks_only_say_which_lack_them(tmp_path):
    a = _write(_executed([new_output("stream", name="stdout", text="1\n")]), tmp_path / "01_a.ipynb")
    b = _write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "02_b.ipynb")
    problems = record.check_together([a, b])
    assert len(problems) == 1 and problems[0].startswith("no outputs in 02_b.ipynb, while 01_a.ipynb have them")
    assert not record.check_together([b])
    other = _executed([new_output("stream", name="stdout", text="1\n")])
    other.metadata[record.META]["mode"] = "full"
    c = _write(other, tmp_path / "03_c.ipynb")
    assert "different runs" in record.check_together([a, c])[0]


def test_the_readme_names_the_run_the_notebooks_show():
    """The course section says which mode and machine made the committed outputs: after a
    re-recording elsewhere it must be updated, not left naming the old run."""
    import nbformat
    runs = {(nb.metadata[record.META]["mode"], nb.metadata[record.META]["machine"])
            for nb in (nbformat.read(p, as_version=4) for p in NOTEBOOKS) if record.executed(nb)}
    if not runs or record.notebook_dir() != record.ROOT / "notebooks":
        pytest.skip("no recorded outputs in notebooks/")
    readme = (record.ROOT / "README.md").read_text()
    for mode, machine in runs:
        assert f"in `{mode}` mode on `{machine}`" in readme, f"README.md does not say: in `{mode}` mode on `{machine}`"


def test_the_command_records_a_notebook_with_an_output_widget(tmp_path):
    """End to end on a small notebook: a fresh kernel runs it; an ipywidgets.Output (05's slider
    draws into one) does not break the run; what is written is clean, fresh and widget-free."""
    import nbformat
    cells = [new_markdown_cell("# A title"),
             new_code_cell("import ipywidgets as W\nout = W.Output()\nwith out:\n    print('drawn in the widget')\nout"),
             new_code_cell("for k in range(3):\n    print(f'\\r{k + 1}/3', end='')\nprint()")]
    path = _write(new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                      "language": "python"}}), tmp_path / "01_a.ipynb")
    problems, _ = record.record(path, "fast", "a CPU")
    assert not problems, "\n".join(problems)
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata and not record.check(path)
    assert [c.execution_count for c in nb.cells[1:]] == [1, 2]
    assert nb.cells[2].outputs[0].text == "3/3\n"
