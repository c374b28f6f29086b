"""A real look at the committed notebooks: each one that holds outputs is rendered to HTML by
nbconvert (as nbviewer does) and opened in headless Chromium (Debian's, as in test_browser.py),
offline. It fails when the page shows no image (or a broken one), an error, a widget
placeholder with no picture beside it, or an object's text where its picture should be
("<IPython.core.display.Image object>", "<Figure size 640x480 with 1 Axes>": nbconvert and GitHub
show no image/gif, and a figure's repr is what a cell shows when its picture is lost). FMNIST_LDM_NOTEBOOKS=<folder> looks at another folder."""
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from fmnist_ldm.course import record

from browsers import CHROMIUM, launch  # noqa: E402
pw = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else __import__("playwright.sync_api").sync_api
NOTEBOOKS = sorted(record.notebook_dir().glob("0*.ipynb"))
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser

# What the page shows, read in the browser: its pictures, the errors and the widget placeholders
# (a widget without its kernel: nothing, an "Error displaying widget", or its repr, e.g. "VBox(...)").
LOOK = r"""() => {
  const WIDGET = /^(Error displaying widget|Loading widget|(interactive|\w*(Box|Slider|Dropdown|Output|Button|Text|Label|Image|Play|Tab|Accordion|Checkbox|ToggleButtons|Select\w*|Progress|HTML))\()/;
  const PLACEHOLDER = /<(IPython\.[\w.]+ object|Figure size [^>]*|matplotlib\.[^>]*|[\w.]+ object at 0x[0-9a-f]+)>/;
  const ERROR = /Traceback \(most recent call last\)|^\w*(Error|Exception|Interrupt): /m;
  const cells = [...document.querySelectorAll('.jp-CodeCell')];
  const shown = img => img.complete && img.naturalWidth > 0;
  const imgs = cells.map(c => [...c.querySelectorAll('.jp-OutputArea-output img')]);
  const res = {images: 0, broken: [], errors: [], lonely_widgets: [], placeholders: []};
  cells.forEach((cell, i) => {
    const prompt = ((cell.querySelector('.jp-InputPrompt') || {}).textContent || `cell ${i}`).replace(/\s+/g, ' ');
    res.images += imgs[i].filter(shown).length;
    if (imgs[i].some(img => !shown(img))) res.broken.push(prompt.trim());
    const outs = [...cell.querySelectorAll('.jp-OutputArea-output')];
    for (const o of outs) {
      const text = o.innerText.trim();
      if (o.dataset.mimeType === 'application/vnd.jupyter.stderr' && ERROR.test(text))
        res.errors.push(prompt.trim() + ' ' + text.slice(0, 300));
      if (o.dataset.mimeType === 'text/plain' && PLACEHOLDER.test(text))
        res.placeholders.push(prompt.trim() + ' ' + text.slice(0, 100));
    }
    const widget = o => o.matches('.jupyter-widgets') || o.querySelector('.jupyter-widgets, script[type="application/vnd.jupyter.widget-view+json"]')
                        || WIDGET.test(o.innerText.trim());
    // a picture beside it: in the same cell, or in the code cell right after it
    if (outs.some(widget) && !imgs[i].concat(imgs[i + 1] || []).some(shown)) res.lonely_widgets.push(prompt.trim());
  });
  return res;
}"""


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run must apt-get install chromium")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    with pw.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


def look(browser, html_path) -> dict:
    """Open a rendered notebook offline (as a file; MathJax and the like from the internet are
    refused) and read what it shows."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
    page.goto(html_path.as_uri(), wait_until="load", timeout=120_000)
    seen = page.evaluate(LOOK)
    page.close()
    return seen


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_rendered_notebook_shows_its_figures_and_no_errors(nb_path, browser, tmp_path):
    from nbconvert import HTMLExporter
    nb = nbformat.read(nb_path, as_version=4)
    if not record.executed(nb):
        pytest.skip(f"{nb_path.name} is committed without outputs (make them: `{record.command(nb_path)}`)")
    html, _ = HTMLExporter().from_notebook_node(nb)
    page = tmp_path / f"{nb_path.stem}.html"
    page.write_text(html, encoding="utf-8")
    seen = look(browser, page)
    assert seen["images"] > 0, f"{nb_path.name} shows no image"
    assert not seen["broken"], f"{nb_path.name}: broken images in {seen['broken']}"
    assert not seen["errors"], f"{nb_path.name} shows errors: {seen['errors']}"
    assert not seen["lonely_widgets"], f"{nb_path.name}: a widget placeholder with no picture beside it in {seen['lonely_widgets']}"
    assert not seen["placeholders"], f"{nb_path.name}: an object's text where its picture should be: {seen['placeholders']}"


def test_the_look_sees_errors_widgets_and_missing_images(browser, tmp_path):
    """The check itself: a notebook with an error, a lone widget and no picture fails all three."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_notebook, new_output
    nb = new_notebook(cells=[
        new_code_cell("1 / 0", execution_count=1, outputs=[new_output(
            "error", ename="ZeroDivisionError", evalue="division by zero",
            traceback=["Traceback (most recent call last)", "ZeroDivisionError: division by zero"])]),
        new_code_cell("display(box)", execution_count=2, outputs=[new_output("display_data", data={
            record.WIDGET: {"model_id": "a", "version_major": 2, "version_minor": 0}, "text/plain": "VBox(children=())"})]),
        new_code_cell("import warnings", execution_count=3, outputs=[new_output("stream", name="stderr", text="UserWarning: fine\n")]),
    ])
    page = tmp_path / "bad.html"
    page.write_text(HTMLExporter().from_notebook_node(nb)[0], encoding="utf-8")
    seen = look(browser, page)
    assert seen["images"] == 0 and len(seen["errors"]) == 1 and seen["lonely_widgets"] == ["In [2]:"], seen
    assert not seen["placeholders"], seen


GIF = ROOT / "assets" / "diffusion_bag.gif"


def _gif_notebook(tmp_path, code):
    """A notebook of one cell, run in a kernel, that shows the GIF `a.gif` as `code` does."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    shutil.copy(GIF, tmp_path / "a.gif")
    nb = new_notebook(cells=[new_code_cell(code)], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    NotebookClient(nb, timeout=120, kernel_name="python3", record_timing=False, resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def test_the_look_sees_a_gif_shown_as_text_and_a_lost_figure(browser, tmp_path):
    """The GIF as notebook 05 once showed it (IPython's Image: image/gif, which nbconvert's HTML and
    GitHub do not render, so the page reads "<IPython.core.display.Image object>"), and a figure whose
    picture is lost: both fail, in the browser and in the recorder's rules; course.figures.GIF passes."""
    from nbconvert import HTMLExporter
    from nbformat.v4 import new_code_cell, new_output
    old = _gif_notebook(tmp_path, 'from IPython.display import Image, display\ndisplay(Image(filename="a.gif"))')
    old.cells.append(new_code_cell("plt.gcf()", execution_count=2, outputs=[new_output(
        "execute_result", execution_count=2, data={"text/plain": "<Figure size 640x480 with 1 Axes>"})]))
    page = tmp_path / "old.html"
    page.write_text(HTMLExporter().from_notebook_node(old)[0], encoding="utf-8")
    seen = look(browser, page)
    assert seen["images"] == 0 and [p.split()[-1] for p in seen["placeholders"]] == ["object>", "Axes>"], seen
    assert len([p for p in record.output_problems(old, "old.ipynb") if "not a picture" in p]) == 2

    new = _gif_notebook(tmp_path, 'from fmnist_ldm.course.figures import GIF\ndisplay(GIF("a.gif", "a bag"))')
    shown = new.cells[0].outputs[0].data
    assert sorted(shown) == ["text/html", "text/plain"] and shown["text/html"].startswith('<img src="data:image/gif;base64,')
    page = tmp_path / "new.html"
    page.write_text(HTMLExporter().from_notebook_node(new)[0], encoding="utf-8")
    seen = look(browser, page)
    assert seen["images"] == 1 and not seen["broken"] and not seen["placeholders"], seen
    assert not record.output_problems(new, "new.ipynb")
