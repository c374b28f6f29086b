#!/usr/bin/env python3
"""The repo on a GPU in one command, within a time budget: the machine, the device tests,
notebooks 02-07 (fast mode, then 04 in full mode while time is left), `train --preset full`
stage by stage, and sampling speed. Every section is guarded (a failure is reported with its
one-line cause and the next section runs) and stopped at its share of --budget-min. Every number
in the report is measured. `--device cpu` is a dry run that shows the report's format.

    python benchmarks/gpu_check.py [--device cuda] [--budget-min 8] [--skip SECTIONS] [--out FILE]

What the GPU machine lacks (pytest, IPython, ipywidgets) travels as wheels in .gpu_wheels/
(benchmarks/gpu_carry.sh), unpacked here before the sections run, offline and without pip.
How the first session with a GPU machine runs it: benchmarks/gpu_check.md.
"""
from __future__ import annotations

import argparse
import atexit
import datetime
import importlib.metadata
import importlib.util
import inspect
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))     # this checkout's package, used in place: the GPU machine installs nothing
WHEELS = ROOT / ".gpu_wheels"     # benchmarks/gpu_carry.sh fills it here; the device tool carries it there

# Each section's share of the budget; time a section leaves unused goes to the sections after it.
SHARES = {"machine": 0.0, "tests": 0.15, "notebooks": 0.40, "train": 0.30, "sample": 0.15}
TRAIN_SHARES = {"VAE": 0.3, "encoding": 0.1, "decoder GAN": 0.25, "UNet": 0.35}
FULL_MODE = ("04", "02")  # notebooks run again in full mode, in this order, with what time is left
WARMUP_STEPS = 10         # training steps left out of steps/s: the first ones pick kernels and allocate
N_IMAGES = 5000           # sampling: 500 per class, as benchmarks/benchmark.py measures
MARKDOWN_CELL = re.compile(r"# %% \[(markdown|md|raw)\]")


def unpack_wheels(folder: Path = WHEELS) -> tuple[list[str], list[str]]:
    """The wheels in `folder` whose distribution this Python lacks, unpacked into one temporary
    folder put on sys.path and PYTHONPATH (for the tests' and notebooks' child processes): what pip
    does for a wheel of pure Python, done without pip, network or write access to site-packages.
    Distributions already installed are left to the machine's own copy.
    Returns (the wheels unpacked, the distributions found installed), as name-version."""
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    unpacked, present, site = [], [], None
    for whl in wheels:
        name, version = whl.name.split("-")[:2]
        try:
            present.append(f"{name}-{importlib.metadata.version(name)}")
            continue
        except importlib.metadata.PackageNotFoundError:
            pass
        if site is None:
            site = Path(tempfile.mkdtemp(prefix="gpu_wheels-"))
            atexit.register(shutil.rmtree, site, True)
        with zipfile.ZipFile(whl) as z:
            z.extractall(site)
        for lib in site.glob("*.data/*lib"):       # purelib / platlib: files meant for site-packages
            shutil.copytree(lib, site, dirs_exist_ok=True)
        unpacked.append(f"{name}-{version}")
    if site is not None:
        sys.path.insert(1, str(site))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        importlib.invalidate_caches()
    return unpacked, present


def data_folder() -> str:
    """Sets FMNIST_DATA for the sections, absolute (the notebooks run in notebooks/): $FMNIST_DATA,
    else .data/ where there is one. Its .xz files (benchmarks/gpu_carry.sh packs Fashion-MNIST so,
    4.4 MB less to carry than .gz) are unpacked into a temporary folder first, which it names then.
    Returns a line for the report."""
    folder = os.environ.get("FMNIST_DATA") or (str(ROOT / ".data") if (ROOT / ".data").is_dir() else "")
    if not folder:
        return "FMNIST_DATA not set and no .data/: the data is looked for where fmnist_ldm.data looks"
    folder = Path(folder).resolve()
    packed, t = sorted(folder.glob("*.xz")), time.perf_counter()
    if packed:
        import lzma
        unpacked = Path(tempfile.mkdtemp(prefix="fmnist-data-"))
        atexit.register(shutil.rmtree, unpacked, True)
        for f in packed:
            with lzma.open(f) as src, open(unpacked / f.stem, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    os.environ["FMNIST_DATA"] = str(unpacked if packed else folder)
    return (f"FMNIST_DATA={os.environ['FMNIST_DATA']}"
            + (f": {len(packed)} .xz files of {folder} unpacked in {time.perf_counter() - t:.1f} s" if packed else ""))


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def one_line(e: BaseException) -> str:
    """'Type: first line of the message (at file:line)', the innermost frame in this repo."""
    msg = str(e).strip().splitlines()
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(str(ROOT))]
    where = f" (at {Path(frames[-1].filename).relative_to(ROOT)}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {msg[0] if msg else ''}{where}"


def until(end: float, share: float, shares_left: float) -> float:
    """A deadline: `share` of the time from now to `end`, out of the `shares_left` still to run."""
    now = time.perf_counter()
    return now + max(end - now, 0.0) * share / shares_left if shares_left else now


def sync(device) -> None:
    """Wait for queued GPU work, so that the clock read next times the work itself."""
    from fmnist_ldm.device import synchronize
    synchronize(device)


class Report:
    """Markdown lines, printed as they come and kept to be written to `path`."""

    def __init__(self, path: Path):
        self.path, self.lines = path, []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self.lines) + "\n")


def run_limited(cmd: list[str], cwd: Path, env: dict, log: Path, deadline: float):
    """Run cmd, its output appended to `log`, until it ends or `deadline`.
    Returns (exit status, or None if it was stopped; seconds; its output)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        f.write(f"\n===== {' '.join(cmd)}  (in {cwd})\n".encode())
        f.flush()
        start, t = f.tell(), time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=max(deadline - t, 1.0))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)     # the whole group: workers the command started too
            p.wait()
            rc = None
        seconds = time.perf_counter() - t
    with open(log, "rb") as f:
        f.seek(start)
        return rc, seconds, f.read().decode(errors="replace")


def excerpt(out: str, n: int = 25) -> str:
    """What says why a run failed, fenced: for a crash, the fatal error and the crashed thread's
    innermost frames (faulthandler's dump); else the output's last n lines."""
    lines = out.rstrip().splitlines()
    fatal = [l for l in lines if "Fatal Python error" in l]
    crashed = next((i for i, l in enumerate(lines) if l.startswith("Current thread")), None)
    shown = fatal[:1] + lines[crashed:crashed + n] if crashed is not None else lines[-n:]
    return "```\n" + "\n".join(shown) + "\n```"


# --- 1. machine ------------------------------------------------------------------------------

def driver_version() -> str:
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"unknown (nvidia-smi: {getattr(e, 'strerror', None) or e})"
    return r.stdout.strip() or f"unknown (nvidia-smi: exit {r.returncode}, {r.stderr.strip()[:200]})"


def section_machine(args, say, deadline, logs):
    import torch
    from fmnist_ldm.device import amp_dtype, cpu_name, describe, get_device
    device = get_device(args.device)
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        say(f"- GPU: {p.name}, compute capability {p.major}.{p.minor}, {p.total_memory / 2**30:.1f} GiB, "
            f"{p.multi_processor_count} multiprocessors")
    say(f"- CUDA GPUs visible to torch: {torch.cuda.device_count()}")
    say(f"- device: {describe(device)}; autocast dtype (amp_dtype): {amp_dtype(device)}")
    say(f"- torch {torch.__version__}, torch.version.cuda {torch.version.cuda}, "
        f"cuDNN {torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else 'none'}")
    say(f"- NVIDIA driver: {driver_version()}")
    say(f"- CPU: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    say(f"- Python {platform.python_version()} ({sys.executable})")


# --- 2. device tests -------------------------------------------------------------------------

def section_tests(args, say, deadline, logs):
    path = Path("tests") / "test_on_device.py"
    if not (ROOT / path).exists():
        say(f"- {path} does not exist (yet): nothing to run")
        return f"skipped: no {path}"
    if not have("pytest"):
        say(f"- skipped: no pytest in this Python, nor a wheel of it in {WHEELS.name}/ (benchmarks/gpu_carry.sh)")
        return "skipped: no pytest"
    # pyproject's addopts name nbval, which the GPU machine lacks: -o addopts= drops them
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(path)]
    rc, seconds, out = run_limited(cmd, ROOT, {"FMNIST_TEST_DEVICE": args.device}, logs / "tests.log", deadline)
    found = [l for l in out.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)|no tests ran", l)]
    summary = found[-1].strip("= ") if found else "no pytest summary line"
    say(f"- `FMNIST_TEST_DEVICE={args.device} python -m pytest -q -p no:cacheprovider -o addopts= {path}`")
    say(f"- {summary}; wall {seconds:.1f} s")
    if rc != 0:
        why = "stopped at its time limit" if rc is None else f"exit status {rc}"
        say(f"- {why}; from its output (all of it in {logs / 'tests.log'}):")
        say(excerpt(out))
        return "failed"


# --- 3. notebooks ----------------------------------------------------------------------------

def code_cells(text: str) -> list[tuple[int, str]]:
    """(line of its `# %%` marker, source) per code cell of a jupytext percent-format file.
    Markdown cells are left out, and IPython magics (% and ! lines) blanked; the source keeps
    the file's line numbers once compiled with that many newlines in front."""
    cells = []
    for no, line in enumerate(text.splitlines(), 1):
        if line.startswith("# %%"):
            cells.append(None if MARKDOWN_CELL.match(line) else (no, []))
        elif cells and cells[-1] is not None:
            cells[-1][1].append("" if line.startswith(("%", "!")) else line)
    return [(no, "\n".join(src)) for no, src in filter(None, cells)]


def _ipython_display() -> None:
    """display() for a notebook run without a kernel, printing what a notebook would show. With
    IPython (from .gpu_wheels/): its own, except that text (Markdown, HTML) prints as text. Without
    it, `from IPython.display import display, Markdown, Image` gets stand-ins that do the same."""
    import builtins
    try:
        import IPython.display as shown
    except ImportError:
        pass
    else:
        show = shown.display       # with no kernel it prints repr(): "<...Markdown object>" says nothing

        def display(*objs, **kwargs):
            for obj in objs:
                text = isinstance(obj, shown.DisplayObject) and isinstance(obj.data, str)
                print(obj.data) if text else show(obj, **kwargs)

        shown.display = builtins.display = display   # a Jupyter kernel provides display() unimported
        return
    import types

    class Shown:
        def __init__(self, data=None, filename=None, **_):
            self.text = data if data is not None else f"[{type(self).__name__}: {filename}]"

        def __str__(self):
            return str(self.text)

    def shown(name):
        if name.startswith("__"):          # the import system's probes: not display objects
            raise AttributeError(name)
        return type(name, (Shown,), {})

    display = types.ModuleType("IPython.display")
    display.display = lambda *objs, **_: print(*objs, sep="\n")
    display.__getattr__ = shown
    ipython = types.ModuleType("IPython")
    # libraries that find "IPython" imported ask it for its shell (matplotlib does): there is none,
    # and the version (0, 0) marks a stand-in, which they then treat as an old IPython
    ipython.display, ipython.get_ipython, ipython.version_info = display, lambda: None, (0, 0)
    sys.modules.update({"IPython": ipython, "IPython.display": display})
    builtins.display = display.display     # a Jupyter kernel provides display() unimported


def bound_names(source: str) -> set[str]:
    """The names a cell binds at its top level (imports, assignments, defs, for targets)."""
    import ast
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).partition(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        else:
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            names |= {n.id for t in filter(None, targets) for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def exec_notebook(path: Path, records: Path) -> None:
    """(In a child process.) The notebook's code cells top to bottom in one namespace, as a kernel
    runs them, one JSON line per cell appended to `records` as it finishes."""
    _ipython_display()
    import matplotlib.pyplot as plt
    cells, namespace = code_cells(path.read_text()), {"__name__": "__main__"}
    missing = {}      # name -> the module it needs: names that a cell skipped for that module would bind
    with open(records, "w", buffering=1) as rec:
        rec.write(json.dumps({"cells": [no for no, _ in cells]}) + "\n")
        for no, source in cells:
            print(f"----- {path.name}, cell at line {no}", flush=True)
            t, status, error = time.perf_counter(), "ok", None
            try:
                exec(compile("\n" * no + source, str(path), "exec"), namespace)
            except Exception as e:
                if isinstance(e, ModuleNotFoundError) and (e.name or "").partition(".")[0] == "ipywidgets":
                    status = "skipped: needs ipywidgets"
                    missing.update(dict.fromkeys(bound_names(source), "ipywidgets"))
                elif isinstance(e, NameError) and getattr(e, "name", None) in missing:
                    status = f"skipped: needs {missing[e.name]} ({e.name} is from a skipped cell)"
                    missing.update(dict.fromkeys(bound_names(source), missing[e.name]))
                else:
                    traceback.print_exc()
                    status, error = "failed", one_line(e)
            plt.close("all")      # as Jupyter's inline backend does after each cell
            rec.write(json.dumps({"line": no, "status": status, "error": error,
                                  "seconds": time.perf_counter() - t}) + "\n")


def run_notebook(nb: Path, mode: str, device: str, deadline: float, log: Path, say) -> tuple[str, float]:
    """One notebook in a subprocess until it ends or `deadline`; says how it went.
    Returns ("ok" | "failed" | "stopped", seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "cells.jsonl"
        env = {"FMNIST_LDM_MODE": mode, "FMNIST_DEVICE": device, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, str(Path(__file__).resolve()), "--exec-notebook", str(nb), "--records", str(records)]
        limit = deadline - time.perf_counter()
        rc, seconds, out = run_limited(cmd, nb.parent, env, log, deadline)
        lines = records.read_text().splitlines() if records.exists() else []
    starts = json.loads(lines[0])["cells"] if lines else []
    done = [json.loads(l) for l in lines[1:]]
    failed = [c for c in done if c["status"] == "failed"]
    skipped = [c for c in done if c["status"].startswith("skipped")]
    text = f"- {nb.stem} ({mode}): {len(done)} of {len(starts) or '?'} code cells in {seconds:.1f} s"
    if done:
        slow = max(done, key=lambda c: c["seconds"])
        text += f" (slowest: line {slow['line']}, {slow['seconds']:.1f} s)"
    complete = bool(starts) and len(done) == len(starts)   # then a kill or crash on the way out spoils nothing
    if rc is None and not complete:
        at = f"in the cell at line {starts[len(done)]}" if starts else "before its first cell"
        text, status = text + f"; stopped at its {limit:.0f} s limit {at}", "stopped"
    else:
        status = "ok" if complete and not failed else "failed"
        if rc not in (0, None):
            text += f"; the process ended with exit status {rc}"
    if failed:
        text += f"; {len(failed)} cell(s) raised, the first at line {failed[0]['line']}: {failed[0]['error']}"
    for c in skipped:
        text += f"; line {c['line']} {c['status']}"
    say(f"{text}: **{status}**")
    if rc not in (0, None):
        say(excerpt(out, 10))
    return status, seconds


def section_notebooks(args, say, deadline, logs):
    books = sorted((ROOT / "notebooks").glob("0[2-7]_*.py"))
    log = logs / "notebooks.log"
    say(f"Each notebook's jupytext `.py` twin, its code cells top to bottom in one namespace, in a "
        f"subprocess with FMNIST_DEVICE={args.device} (in notebooks/, matplotlib Agg); output in {log}.")
    versions = {m: importlib.metadata.version(m) if have(m) else None for m in ("IPython", "ipywidgets")}
    say(f"- IPython {versions['IPython'] or 'absent: a stand-in whose display() prints'}, ipywidgets "
        f"{versions['ipywidgets'] or 'absent: the cells that need it are skipped'} (no kernel: display() prints)")
    stale = [p.name for p in (ROOT / "notebooks" / "runs").glob("notebooks-*") if any(p.iterdir())]
    if stale:
        say(f"- note: notebooks/runs/ already holds {', '.join(stale)}: stages found there are loaded, not trained")
    fast, failed = {}, False
    for i, nb in enumerate(books):
        # 2 / (n + 1) of what is left with n to go: about twice an even share, and all of it for the last
        status, fast[nb.name[:2]] = run_notebook(nb, "fast", args.device, until(deadline, 2, len(books) - i + 1),
                                                 log, say)
        failed |= status != "ok"
    for nb in (b for prefix in FULL_MODE for b in books if b.name.startswith(prefix)):
        left = deadline - time.perf_counter()
        if left < fast[nb.name[:2]]:
            say(f"- {nb.stem} (full): not run, {max(left, 0):.0f} s left is less than its fast run took")
            break
        status, _ = run_notebook(nb, "full", args.device, deadline, log, say)
        failed |= status == "failed"          # stopped at the limit is expected in full mode
    return "failed" if failed else "ok"


# --- 4. train --preset full, stage by stage ----------------------------------------------------

class OutOfTime(Exception):
    """Raised from fit's after_step to stop a stage at its deadline."""


class StageClock:
    """fit's after_step: counts and times the optimiser steps, and stops the stage at `deadline`."""

    def __init__(self, device, deadline: float):
        self.device, self.deadline = device, deadline
        self.steps, self.warm, self.last = 0, None, None

    def __call__(self, step: int, loss: float) -> None:
        sync(self.device)
        self.steps, self.last = step, time.perf_counter()
        if step == WARMUP_STEPS:
            self.warm = self.last
        if self.last > self.deadline:
            raise OutOfTime

    def rate(self) -> str:
        if self.warm is None or self.steps == WARMUP_STEPS:
            return "n/a"
        return f"{(self.steps - WARMUP_STEPS) / (self.last - self.warm):.2f}"


def encode_until(vae, x, cfg, device, deadline, chunk: int = 1000):
    """The Posterior (vae.posteriors) of x's images, chunk by chunk until `deadline` (at least
    one chunk), on the CPU: of all of them when time allows."""
    import torch
    from fmnist_ldm.vae import Posterior, posteriors
    parts = []
    for i in range(0, len(x), chunk):
        if parts and time.perf_counter() > deadline:
            break
        parts.append(posteriors(vae, x[i:i + chunk].to(device), bf16=cfg.bf16))
    sync(device)
    return Posterior(*(torch.cat(p) for p in zip(*parts)))


def section_train(args, say, deadline, logs):
    import torch
    from fmnist_ldm.config import preset
    from fmnist_ldm.data import LatentDataset, load_fashion_mnist, to_model_range
    from fmnist_ldm.device import get_device
    from fmnist_ldm.train import sharpen_decoder, train_unet, train_vae
    from fmnist_ldm.vae import Posterior
    from fmnist_ldm.weights import build_vae
    device = get_device(args.device)
    images, labels = load_fashion_mnist("train", download=False)    # the GPU machine has no internet
    x, notes, shares, ok, finished = to_model_range(images), [], dict(TRAIN_SHARES), True, []
    say(f"`preset('full')` through fmnist_ldm.train on {device}, each stage stopped at its share of "
        f"the time; steps/s over the steps after the first {WARMUP_STEPS}.")
    say("")
    say("| stage | steps done of total | wall s | steps/s | finished |")
    say("|---|---:|---:|---:|---|")

    def share_of_time(name: str) -> float:
        share = shares.pop(name)
        return until(deadline, share, share + sum(shares.values()))

    def stage(name: str, total: int, fn):
        """fn(after_step) until it returns or the stage's time is up. Returns its result or None."""
        nonlocal ok
        clock = StageClock(device, share_of_time(name))
        t, result = time.perf_counter(), None
        try:
            result, how = fn(clock), "yes"
        except OutOfTime:
            how = "no: stopped at its time share"
        except Exception as e:
            traceback.print_exc()
            how, ok = f"failed: {one_line(e)}", False
        finished.append(how == "yes")
        say(f"| {name} | {clock.steps:,} of {total:,} | {time.perf_counter() - t:.1f} | {clock.rate()} | {how} |")
        return result

    with tempfile.TemporaryDirectory() as tmp:
        cfg = preset("full", out_dir=tmp)       # checkpoints in a temp dir: never over runs/ or model/
        per_epoch = len(x) // cfg.vae_batch_size     # steps as fit counts them
        trained = stage("VAE", cfg.vae_epochs * per_epoch, lambda after: train_vae(cfg, x, device, after_step=after))
        encode_by = share_of_time("encoding")
        if trained:
            vae, hist, posterior = trained
            notes.append(f"encoding the {len(x):,} training latents (in train_vae): {hist['encode_seconds']:.1f} s")
        else:
            # a stopped fit returns no model; the later stages' speed does not depend on the VAE's weights
            vae = build_vae(cfg, stage="vae").to(device).eval()
            t = time.perf_counter()
            posterior = encode_until(vae, x, cfg, device, encode_by)
            notes.append(f"the VAE stage did not finish: the next stages start from a fresh build_vae(cfg) "
                         f"model; it encoded {len(posterior.mean):,} of the {len(x):,} training latents in "
                         f"{time.perf_counter() - t:.1f} s" + ("" if len(posterior.mean) == len(x) else
                                                               " (its time share); the rest repeat them"))
            # as many latents as images, so that the later stages count their steps as in a real run
            posterior = Posterior(*(m.repeat(-(-len(x) // len(m)), 1, 1, 1)[:len(x)] for m in posterior))
            vae = vae.cpu()
        stage("decoder GAN", cfg.vae_gan_epochs * per_epoch,
              lambda after: sharpen_decoder(cfg, vae, x, posterior, device, after_step=after))
        data = LatentDataset(posterior.mean, posterior.std, labels, vae.scale.item())
        stage("UNet", cfg.unet_steps or cfg.unet_epochs * (len(data) // cfg.batch_size),
              lambda after: train_unet(cfg, data, device, after_step=after))
    say("")
    notes.append("timed through fit's after_step, which makes fit read every step's loss (one wait for "
                 "the device per step; without after_step it reads them every 50 steps)")
    for n in notes:
        say(f"- {n}")
    if device.type == "cuda":
        say(f"- peak GPU memory allocated: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return f"{'ok' if ok else 'failed'}: {sum(finished)} of {len(finished)} stages finished"


# --- 5. sampling speed -------------------------------------------------------------------------

def section_sample(args, say, deadline, logs):
    import torch
    from fmnist_ldm.device import get_device
    from fmnist_ldm.pipeline import DEFAULTS, Pipeline
    device = get_device(args.device)
    pipe = Pipeline.from_pretrained(device=device)
    batch = inspect.signature(Pipeline.generate).parameters["batch_size"].default
    classes = pipe.cfg.num_classes
    labels = torch.arange(N_IMAGES) % classes
    runs = [(", ".join(f"{k}={v}" for k, v in DEFAULTS.items()), DEFAULTS),
            ("sampler=distilled, steps=4", dict(sampler="distilled", steps=4))]
    say(f"{pipe!r}; each setting once after a warm-up call of one batch ({batch} images), "
        f"up to {N_IMAGES:,} images ({N_IMAGES // classes} per class) as the time allows.")
    say("")
    say("| generate(...) | images | s | images/s | steps | UNet passes per image | uint8 min / max / mean | warm-up s |")
    say("|---|---:|---:|---:|---:|---:|---|---:|")
    flat = []
    for i, (name, kwargs) in enumerate(runs):
        end = until(deadline, 1, len(runs) - i)
        t = time.perf_counter()
        pipe.generate(labels[:batch], **kwargs)    # warm-up: loads the student, picks kernels
        sync(device)
        warm = time.perf_counter() - t
        fits = int((end - time.perf_counter()) / warm * batch) // classes * classes   # at the warm-up's pace
        n = min(N_IMAGES, max(batch, fits))
        t = time.perf_counter()
        s = pipe.generate(labels[:n], **kwargs)
        sync(device)
        seconds, im = time.perf_counter() - t, s.images.float()
        say(f"| {name} | {n:,} | {seconds:.2f} | {n / seconds:.1f} | {s.steps} | {s.unet_passes} | "
            f"{im.min():.0f} / {im.max():.0f} / {im.mean():.1f} | {warm:.2f} |")
        if im.min() == im.max():
            flat.append(name)
    if flat:
        say(f"- every image is one value for: {'; '.join(flat)}")
    return "failed" if flat else "ok"


SECTIONS = {"machine": ("1. Machine", section_machine), "tests": ("2. Device tests", section_tests),
            "notebooks": ("3. Notebooks 02-07 on the device", section_notebooks),
            "train": ("4. train --preset full, stage by stage", section_train),
            "sample": ("5. Sampling speed", section_sample)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, cpu (a dry run), mps or auto")
    ap.add_argument("--budget-min", type=float, default=8.0, help="total minutes for all sections")
    ap.add_argument("--skip", default="", help=f"comma list of sections to leave out: {', '.join(SECTIONS)}")
    ap.add_argument("--out", help="the report (default $OUT/gpu_check.md, else ./gpu_check.md); logs beside it")
    ap.add_argument("--exec-notebook", type=Path, help=argparse.SUPPRESS)    # the notebooks' child processes
    ap.add_argument("--records", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.exec_notebook:
        exec_notebook(args.exec_notebook, args.records)
        return 0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - SECTIONS.keys():
        ap.error(f"--skip: unknown section(s) {', '.join(sorted(skip - SECTIONS.keys()))}; use {', '.join(SECTIONS)}")
    out = Path(args.out or Path(os.environ.get("OUT", ".")) / "gpu_check.md").resolve()
    say, end = Report(out), T0 + args.budget_min * 60
    try:
        unpacked, present = unpack_wheels()
    except Exception as e:           # then each section says what it lacks
        unpacked, present = [f"none: {one_line(e)}"], []
    try:
        data = data_folder()
    except Exception as e:
        data = f"could not be unpacked, {one_line(e)}"
    say(f"# GPU check: --device {args.device}, budget {args.budget_min:g} min")
    say(f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, `python benchmarks/gpu_check.py "
        f"{' '.join(sys.argv[1:])}`; logs beside this report, in {out.parent}")
    if unpacked or present:
        say(f"\nFrom {WHEELS.name}/: {len(unpacked)} wheels unpacked ({', '.join(unpacked) or 'none'}); "
            f"{len(present)} left to the copy installed here ({', '.join(present) or 'none'}).")
    else:
        say(f"\nNo {WHEELS.name}/ here: what this Python lacks is skipped, each with its reason.")
    say(f"Data: {data}.")
    todo, rows = [s for s in SECTIONS if s not in skip], []
    for name, (title, run) in SECTIONS.items():
        if name in skip:
            rows.append((name, "skipped (--skip)", 0.0))
            continue
        deadline = until(end, SHARES[name], sum(SHARES[s] for s in todo))
        todo.remove(name)
        say(f"\n## {title}")
        t = time.perf_counter()
        try:
            status = run(args, say, deadline, out.parent) or "ok"
        except Exception as e:
            traceback.print_exc()
            status = "failed"
            say(f"- **failed**: {one_line(e)}")
        rows.append((name, status, time.perf_counter() - t))
        say.save()                # a run killed later still leaves the report so far
    say("\n## Summary\n")
    say("| section | result | s |")
    say("|---|---|---:|")
    for name, status, seconds in rows:
        say(f"| {name} | {status} | {seconds:.1f} |")
    say(f"\nTotal wall time: {time.perf_counter() - T0:.1f} s (budget {args.budget_min * 60:.0f} s).")
    say.save()
    print("\n" + "=" * 80 + f"\nThe report, also in {out}:\n", flush=True)
    print("\n".join(say.lines), flush=True)
    return 0 if all(s.startswith(("ok", "skipped")) for _, s, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
