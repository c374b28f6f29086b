"""A real browser: JupyterLab on 127.0.0.1, Playwright driving Debian's Chromium, opens
notebook 05, runs it, picks a class from the menu, moves the step slider and checks that the
picture changes."""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
from browsers import CHROMIUM, launch  # noqa: E402
pw = pytest.importorskip("playwright.sync_api") if not os.environ.get("CI") else __import__("playwright.sync_api").sync_api

pytestmark = pytest.mark.browser


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


NOTEBOOK = "notebooks/05_application.ipynb"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a COPY of notebooks/: JupyterLab saves (autosave too) into the notebook
    it runs, and the tracked one would end up holding outputs. The kernel imports the package of
    this checkout (PYTHONPATH), whose pipeline.MODEL_DIR is this checkout's model/."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing: .ci/run must apt-get install chromium")
        pytest.skip("no /usr/bin/chromium (apt-get install chromium)")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints", "__pycache__"))
    port, token = _free_port(), "fmnist-ldm-test"
    env = {**os.environ, "FMNIST_LDM_MODE": "fast", "JUPYTER_PLATFORM_DIRS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
                             f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start on 127.0.0.1")
    yield url, token, root
    proc.terminate()
    proc.wait(timeout=30)


def _snapshot(folder):
    """(size, mtime) of every file under folder, to see what a test wrote there."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _wait_for_idle_kernel(url, token, notebook, timeout=180):
    """Poll the server (not the page) until the notebook's kernel has a session and reports idle."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5) as r:
            sessions = json.load(r)
        if any(s["path"].endswith(notebook) and s["kernel"]["execution_state"] == "idle" for s in sessions):
            return
        time.sleep(0.5)
    pytest.fail(f"the kernel of {notebook} did not start and reach idle in {timeout} s")


def _wait_until_all_cells_ran(url, token, notebook, timeout=900, settle=5.0):
    """Poll the server until the kernel has stayed idle for `settle` seconds: Run All queues every
    cell, and a widget's callback waits behind the cells still queued after it (05's later
    sections take minutes on a CPU). Between two cells the kernel is idle for milliseconds only."""
    deadline, idle_since = time.time() + timeout, None
    while time.time() < deadline:
        with urllib.request.urlopen(f"{url}/api/sessions?token={token}", timeout=5) as r:
            sessions = json.load(r)
        idle = any(s["path"].endswith(notebook) and s["kernel"]["execution_state"] == "idle" for s in sessions)
        idle_since = (idle_since or time.time()) if idle else None
        if idle_since and time.time() - idle_since >= settle:
            return
        time.sleep(0.25)
    pytest.fail(f"{notebook} was still running after {timeout} s")


def _run_all_cells(page, tries=3):
    """Run > Run All Cells, retried while no cell starts: right after the kernel turns idle the
    front end can still drop the command, which once left a CI run waiting for nothing."""
    started = ("() => [...document.querySelectorAll('.jp-InputPrompt')]"
               ".some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))")
    for _ in range(tries):
        page.click("text=Run", timeout=30_000)               # the Run menu
        page.click("text=Run All Cells", timeout=30_000)
        try:
            page.wait_for_function(started, timeout=30_000)
            return
        except pw.TimeoutError:
            page.keyboard.press("Escape")                    # close the menu if it is still open
    pytest.fail(f"'Run All Cells' started no cell in {tries} tries")


def test_sliders_redraw_the_picture(lab, tmp_path):
    url, token, root = lab
    checkout_before = _snapshot(ROOT / "notebooks")
    with pw.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        _wait_for_idle_kernel(url, token, NOTEBOOK)
        _run_all_cells(page)
        sliders = page.locator(".widget-slider, .jupyter-widget-slider, .widget-hslider")
        sliders.first.wait_for(timeout=480_000)
        out_img = page.locator(".widget-output img").first
        out_img.wait_for(timeout=120_000)
        _wait_until_all_cells_ran(url, token, NOTEBOOK)
        caption = page.locator(".widget-label").filter(has_text="/20 (t =")   # our caption, not a slider's name

        out_img.scroll_into_view_if_needed()       # JupyterLab does not render cells far off screen

        def picture():
            return out_img.get_attribute("src")

        before, caption_before = picture(), caption.first.text_content()
        # class menu: pick another class by its name
        page.locator(".widget-dropdown select").first.select_option(label="Bag")
        page.wait_for_function("prev => { const i = document.querySelector('.widget-output img');"
                               " return i && i.src !== prev; }", arg=before, timeout=120_000)
        after_class = picture()
        assert after_class != before
        assert caption.first.text_content().startswith("Bag"), caption.first.text_content()
        # step slider (the first slider): it opens at step 0, pure noise; go 10 steps into the run
        page.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle").nth(0).focus()
        for _ in range(10):
            page.keyboard.press("ArrowRight")
        page.locator(".widget-label").filter(has_text="step 10/20").wait_for(timeout=120_000)
        page.wait_for_function("prev => { const i = document.querySelector('.widget-output img');"
                               " return i && i.src !== prev; }", arg=after_class, timeout=120_000)
        assert picture() != after_class and "step 10/20" in caption.first.text_content()
        # the fast sampler: the distilled student's 4 steps, a new picture at the last one
        after_step = picture()
        page.locator("button", has_text="fast: 4 steps").first.click()
        page.locator(".widget-label").filter(has_text="Bag, step 4/4").wait_for(timeout=120_000)
        page.wait_for_function("prev => { const i = document.querySelector('.widget-output img');"
                               " return i && i.src !== prev; }", arg=after_step, timeout=120_000)
        page.screenshot(path=str(tmp_path / "lab.png"))
        # save, as autosave would: the served copy gets the outputs, the checkout's file stays as it was
        served = root / NOTEBOOK
        saved_before = served.stat().st_mtime_ns
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        deadline = time.time() + 60
        while served.stat().st_mtime_ns == saved_before and time.time() < deadline:
            time.sleep(0.5)
        browser.close()
    assert any(c.get("outputs") for c in json.loads(served.read_text())["cells"]), "the notebook was not saved"
    after = _snapshot(ROOT / "notebooks")
    changed = sorted(str(p.relative_to(ROOT)) for p in after if checkout_before.get(p) != after[p])
    assert not changed, f"the browser test wrote into the checkout: {changed}"
