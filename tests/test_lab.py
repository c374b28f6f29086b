"""The lab (lab/, fmnist_ldm/lab.py): the page in headless Chromium (WASM only), driven by Playwright
as tests/test_browser.py drives JupyterLab. The page's samplers against Pipeline.generate on the same
starting noise; every class drawn and the shipped judge (Python) agreeing with the class asked for;
the step slider; the settings in the URL; no console errors; the server's headers."""
import os
import urllib.request

import numpy as np
import pytest
import torch

from browsers import CHROMIUM, launch  # noqa: E402
CI = bool(os.environ.get("CI"))
if not CI:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
pw = pytest.importorskip("playwright.sync_api") if not CI else __import__("playwright.sync_api").sync_api

from fmnist_ldm import lab as labmod  # noqa: E402

pytestmark = pytest.mark.browser
N_CLASS_IMAGES = 3        # images per class in the judge test


def _skip_or_fail(why):
    if CI:
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        _skip_or_fail("no /usr/bin/chromium (apt-get install chromium)")
    try:
        labmod.ort_web_dir()
    except labmod.LabError as e:          # offline, and no $FMNIST_ORT_WEB
        _skip_or_fail(f"no onnxruntime-web: {e}")
    out = labmod.build_site(tmp_path_factory.mktemp("site"))
    srv, url = labmod.serve_in_thread(out)
    yield url
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser(site):
    with pw.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(site, browser):
    """The page, loaded, with every console error and uncaught exception it reports kept in .errors."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.errors = []
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.on("pageerror", lambda e: page.errors.append(f"uncaught: {e}"))
    page.goto(site)
    page.evaluate("window.lab.ready.then(() => true)")
    yield page
    page.close()


@pytest.fixture(scope="module")
def pipe():
    mp = pytest.MonkeyPatch()
    mp.setenv("FMNIST_AMP", "fp32")       # the page runs float32
    from fmnist_ldm.pipeline import Pipeline
    yield Pipeline.from_pretrained(device="cpu")
    mp.undo()


def generate_in_page(page, noise, **options):
    """window.lab.generate(options) from `noise` -> uint8 [n, 28, 28]."""
    got = page.evaluate("async ([o, noise]) => { o.noise = Float32Array.from(noise);"
                        " const r = await window.lab.generate(o); return Array.from(r.images); }",
                        [options, noise.flatten().tolist()])
    return np.array(got, dtype=np.uint8).reshape(len(noise), 28, 28)


LABELS = [0, 3, 5, 7, 9, 10]        # 10: the null class, unconditional


@pytest.mark.parametrize("sampler,steps,guidance,interval", [
    ("dpmpp2m", 20, 5.0, (300, 700)),      # the defaults
    ("ddim", 8, 3.0, None),                 # guided at every step
])
def test_page_draws_what_the_pipeline_draws(page, pipe, sampler, steps, guidance, interval):
    from fmnist_ldm.device import randn
    noise = randn((len(LABELS), *pipe.shape), 5, torch.device("cpu"))
    want = pipe.generate(LABELS, sampler, steps, guidance, interval, x_start=noise).images.numpy()
    got = generate_in_page(page, noise, classes=LABELS, sampler=sampler, steps=steps, guidance=guidance,
                           guidanceInterval=list(interval) if interval else None)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 4 and diff.mean() < 0.05, (diff.max(), diff.mean())


def test_page_defaults_are_the_librarys(page, pipe):
    """Options left out take sampling.DEFAULTS (dpmpp2m, 20 steps, guidance 5 in [300, 700])."""
    from fmnist_ldm.device import randn
    noise = randn((2, *pipe.shape), 8, torch.device("cpu"))
    want = pipe.generate([1, 8], x_start=noise).images.numpy()
    diff = np.abs(generate_in_page(page, noise, classes=[1, 8]).astype(int) - want.astype(int))
    assert diff.max() <= 4


def test_student_in_page_is_the_librarys(page, pipe):
    """The distilled student's one step, from the same noise. Pipeline.generate takes no x_start for
    the student (it refuses edits), so the library's own loop runs it: its sampler, its denoiser."""
    from fmnist_ldm.data import to_uint8
    from fmnist_ldm.device import randn
    from fmnist_ldm.sampling import GuidedDenoiser, sample
    noise = randn((len(LABELS), *pipe.shape), 6, torch.device("cpu"))
    run = pipe.sampler("distilled")
    denoise = GuidedDenoiser(lambda x, t, y: pipe.student(x, t, y), pipe.schedule, pipe.cfg.prediction,
                             torch.tensor(LABELS), 1.0)
    with torch.no_grad():
        want = to_uint8(pipe.decode(sample(denoise, pipe.schedule, noise, run, 1))).numpy()
    got = generate_in_page(page, noise, classes=LABELS, sampler="distilled", steps=1)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 4 and diff.mean() < 0.05, (diff.max(), diff.mean())


def test_seed_fixes_the_pictures_and_bad_options_are_refused(page):
    """A seed gives the same images every time (the page's own RNG, not torch's), another seed
    others; a bad option rejects with a message naming it."""
    run = lambda seed: page.evaluate("s => window.lab.generate({classes: [1, 2], sampler: 'distilled', steps: 2,"
                                     " seed: s}).then(r => Array.from(r.images))", seed)
    first = run(11)
    assert run(11) == first and run(12) != first
    for bad, word in (("{classes: [11]}", "classes"), ("{classes: [1], steps: 0}", "steps"),
                      ("{classes: [1], sampler: 'ddpm'}", "sampler"), ("{classes: [1], guidance: -1}", "guidance")):
        message = page.evaluate(f"window.lab.generate({bad}).then(() => 'resolved', e => e.message)")
        assert message.startswith(word), (bad, message)


def test_page_draws_each_class_and_the_judge_agrees(page):
    """Through the page's controls: each class, N_CLASS_IMAGES images at the defaults; the grid on
    screen is what lab.generate returned, and the shipped judge (Python) names the class asked for."""
    from fmnist_ldm.metrics import load_judge, predict
    images, asked = [], []
    page.fill("#n", str(N_CLASS_IMAGES))
    page.fill("#seed", "3")
    for c in range(10):
        page.select_option("#class", str(c))
        page.evaluate("window.lab.last = null")
        page.click("#go")
        page.wait_for_function("window.lab.last !== null", timeout=120_000)
        got = np.array(page.evaluate("Array.from(window.lab.last.images)"), dtype=np.uint8).reshape(-1, 28, 28)
        # the grid canvas: tile k at (k % 4) * 29, (k // 4) * 29, grey in every channel
        drawn = np.array(page.evaluate("""() => { const c = document.getElementById('grid');
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"""), dtype=np.uint8)
        width = min(4, N_CLASS_IMAGES) * 29 - 1
        drawn = drawn.reshape(-1, width, 4)[..., 0]
        for k in range(N_CLASS_IMAGES):
            y, x = (k // 4) * 29, (k % 4) * 29
            assert (drawn[y:y + 28, x:x + 28] == got[k]).all(), f"class {c}: tile {k} is not the image generated"
        images.append(got)
        asked += [c] * N_CLASS_IMAGES
    judged = predict(load_judge(device="cpu"), torch.from_numpy(np.concatenate(images)))
    agree = (judged == torch.tensor(asked)).float().mean().item()
    assert agree >= 0.9, f"the judge agrees with the class asked for on {agree:.0%} of the page's images"


def test_step_slider_redraws(page):
    if page.evaluate("window.lab.last === undefined || window.lab.last === null"):
        page.click("#go")
        page.wait_for_function("window.lab.last", timeout=120_000)
    steps = page.evaluate("window.lab.last.steps")
    canvas = lambda cid: page.evaluate(f"document.getElementById('{cid}').toDataURL()")
    probs = lambda: page.inner_html("#probs")           # the bars' widths, to 0.1 %
    before = canvas("zt"), canvas("x0"), probs()
    page.evaluate("""k => { const s = document.getElementById('scrub'); s.value = String(k);
                     s.dispatchEvent(new Event('input')); }""", 0)       # the first step: t = T-1
    page.wait_for_function("document.getElementById('scrub').dataset.shown === '0'", timeout=60_000)
    assert f"step 0/{steps} (t = 999)" in page.text_content("#stepinfo")
    after = canvas("zt"), canvas("x0"), probs()
    assert after[0] != before[0] and after[1] != before[1], "the slider did not redraw z_t and x0"
    assert after[2] != before[2], "the judge's probabilities did not change with the step"


def test_url_restores_settings(site, browser):
    page = browser.new_page()
    query = "class=3&n=4&sampler=ddim&steps=7&guidance=2.5&interval=none&seed=9"
    page.goto(f"{site}?{query}")
    page.evaluate("window.lab.ready.then(() => true)")
    values = {k: page.input_value(f"#{k}") for k in ("class", "n", "sampler", "steps", "guidance", "interval", "seed")}
    assert values == {"class": "3", "n": "4", "sampler": "ddim", "steps": "7", "guidance": "2.5",
                      "interval": "none", "seed": "9"}
    page.select_option("#class", "8")                  # a change goes into the URL
    assert "class=8" in page.url and "sampler=ddim" in page.url
    page.reload()
    page.evaluate("window.lab.ready.then(() => true)")
    assert page.input_value("#class") == "8" and page.input_value("#steps") == "7"
    page.close()


def test_server_isolates_the_page(site, page):
    """COOP/COEP: the page is cross-origin isolated, so ONNX Runtime Web may use threads."""
    with urllib.request.urlopen(site) as r:
        assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    assert page.evaluate("self.crossOriginIsolated")


def test_build_command_writes_a_static_site(site, tmp_path):
    """`python -m fmnist_ldm lab --build DIR`: the page, the models with their manifest, the pinned runtime."""
    from fmnist_ldm import cli
    cli.main(["lab", "--build", str(tmp_path / "site")])
    out = tmp_path / "site"
    assert all((out / f).is_file() for f in labmod.PAGE_FILES)
    assert {p.name for p in (out / "models").iterdir()} >= {"manifest.json", "unet.onnx", "student.onnx", "decoder.onnx"}
    assert sorted(p.name for p in (out / "ort").iterdir()) == sorted(labmod.ORT_WEB_FILES)


def test_no_console_errors(page):
    """Last: whatever the tests above made the page do, it logged no error."""
    assert page.errors == []
