"""How fast the lab is (issue 35): in headless Chromium (Playwright, Debian's chromium, WASM), through
the page's own Generate button, and the Python pipeline beside it in the same run, on the same machine:

  first step   16 images, the defaults (DPM-Solver++(2M), 20 steps, guidance 5 in [300, 700]):
               from the click until the first step's guess is drawn (one UNet pass + one decode)
  whole run    the same 20-step guided run of 16, every step decoded and drawn
  student      the distilled student's 1 step of 16, decoded and drawn
  API run      the whole run through window.lab.generate, which decodes only the last step

Goals on a 2-core CPU: first step <= 0.5 s, whole run <= 3 s, student <= 0.3 s. Prints numbers
(the median of --repeats runs, after one warm-up), not a test:

    python benchmarks/lab_speed.py [--threads 1 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fmnist_ldm import lab  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
N, CLASS = 16, 7


def machine() -> str:
    try:
        name = next(l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True)
                    .stdout.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"


def page_runs(url: str, threads: int, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright
    out = {"first step": [], "whole run": [], "student": [], "API run": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})

        def click(sampler, steps):
            page.goto(f"{url}?class={CLASS}&n={N}&sampler={sampler}&steps={steps}&guidance=5&interval=300,700"
                      f"&seed=0&threads={threads}") if page.url == "about:blank" else None
            page.evaluate("window.lab.ready.then(() => true)")
            page.select_option("#sampler", sampler)
            page.fill("#steps", str(steps))
            page.evaluate("window.lab.last = null")
            page.click("#go")
            page.wait_for_function("window.lab.last !== null", timeout=300_000)
            return page.evaluate("window.lab.timings")

        status = None
        for i in range(repeats + 1):               # the first: warm-up (WASM kernels, memory)
            full = click("dpmpp2m", 20)
            student = click("distilled", 1)
            api = page.evaluate(f"window.lab.generate({{classes: new Array({N}).fill({CLASS})}}).then(r => r.ms)")
            status = page.text_content("#status")
            drawn = full["stepsDrawn"]
            if i:
                out["first step"].append(full["firstStepMs"] / 1e3)
                out["whole run"].append(full["totalMs"] / 1e3)
                out["student"].append(student["totalMs"] / 1e3)
                out["API run"].append(api / 1e3)
        browser.close()
    return {k: statistics.median(v) for k, v in out.items()} | {"status": f"{status}; {drawn} of 20 steps drawn"}


def python_runs(repeats: int) -> dict:
    import torch
    from fmnist_ldm.data import to_uint8
    from fmnist_ldm.pipeline import Pipeline
    from fmnist_ldm.sampling import GuidedDenoiser
    pipe = Pipeline.from_pretrained(device="cpu")
    labels = [CLASS] * N
    out = {"first step": [], "whole run": [], "student": [], "API run": []}
    for i in range(repeats + 1):
        x = torch.randn(N, *pipe.shape, generator=torch.Generator().manual_seed(i))
        t0 = time.perf_counter()
        denoise = GuidedDenoiser(pipe._model, pipe.schedule, pipe.cfg.prediction, torch.tensor(labels), 5.0, (300, 700))
        with torch.no_grad():
            x0, _ = denoise(x.contiguous(memory_format=pipe.memory_format), pipe.schedule.T - 1)
            to_uint8(pipe.decode(x0))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        pipe.generate(labels, seed=i)
        whole = time.perf_counter() - t0
        t0 = time.perf_counter()
        pipe.generate(labels, sampler="distilled", steps=1, seed=i)
        student = time.perf_counter() - t0
        if i:
            out["first step"].append(first), out["whole run"].append(whole), out["student"].append(student)
            out["API run"].append(whole)            # generate: the same call
    return {k: statistics.median(v) for k, v in out.items()} | {"status": repr(pipe)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="WASM threads to try for the UNet "
                    "(the decoder has a worker and a thread of its own)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site = lab.build_site(Path(tmp) / "site")
        size = {sub: sum(p.stat().st_size for p in (site / sub).rglob("*")) / 1e6 for sub in ("models", "ort")}
        srv, url = lab.serve_in_thread(site)
        rows = [(f"page, WASM, {t} thread(s)", page_runs(url, t, a.repeats)) for t in a.threads]
        srv.shutdown()
    rows.append(("Python pipeline (torch)", python_runs(a.repeats)))
    print(f"machine: {machine()}")
    print(f"page: models {size['models']:.1f} MB, ONNX Runtime Web {lab.ORT_WEB_VERSION} {size['ort']:.1f} MB")
    print(f"{'':34} {'first step':>11} {'whole run':>10} {'student':>8} {'API run':>8}   "
          f"(seconds, 16 images, median of {a.repeats})")
    print(f"{'goal (2-core CPU)':34} {0.5:>11.2f} {3.0:>10.2f} {0.3:>8.2f} {'':>8}")
    for name, r in rows:
        print(f"{name:34} {r['first step']:>11.2f} {r['whole run']:>10.2f} {r['student']:>8.2f} {r['API run']:>8.2f}   "
              f"{r['status']}")


if __name__ == "__main__":
    main()
