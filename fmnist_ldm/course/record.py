"""Run the course and keep what it shows: the notebooks are committed with the outputs of one run.

    python -m fmnist_ldm.record [--mode fast|full] [notebooks...]      (default: every notebook)
    python -m fmnist_ldm.record --check [notebooks...]                 (run nothing: check them)

Each notebook runs top to bottom in a fresh kernel in its own folder, outside CI, so that its first
lines say the mode, the device and the machine as a student would see them (full mode where a CUDA
GPU is at hand, fast mode otherwise). Its outputs are then cleaned (below) and written into the
.ipynb; the jupytext .py twin is left as it is, output-free. The notebook's metadata records a hash
of its sources, the mode and the machine: `check` (run by tests/test_notebook_outputs.py) fails
when the sources changed after the outputs were made, or when an output breaks a rule:

- no widget state (GitHub's renderer rejects it) and no widget views: only a plain copy can show;
- progress bars in their final state: a stream keeps what a terminal shows after its carriage returns;
- no absolute paths, home folder, host or user names: the checkout's root becomes a relative path;
- no picture that renders as text: an output whose nbconvert HTML (and GitHub) shows
  `<IPython.core.display.Image object>` or `<Figure size ...>` where a picture should be;
- no error outputs, no execution timestamps; every code cell ran once, in order;
- each notebook at most MAX_BYTES.
"""
from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from .clean_outputs import WIDGET, clean

ROOT = Path(__file__).resolve().parents[2]         # the checkout, two folders above this file
MAX_BYTES = 1_500_000
META = "fmnist_ldm"                                   # nb.metadata[META]: source_sha256, mode, machine


def notebook_dir() -> Path:
    """The notebooks the tests check: notebooks/, or the folder FMNIST_LDM_NOTEBOOKS names."""
    return Path(os.environ.get("FMNIST_LDM_NOTEBOOKS") or ROOT / "notebooks")


def command(path: Path) -> str:
    """The command that re-makes one notebook's outputs."""
    path = Path(path).resolve()
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return f"python -m fmnist_ldm.record {shown}"


# ---------------------------------------------------------------- what a notebook holds

def source_hash(nb) -> str:
    """sha256 of the cells' types and sources (code and markdown): not outputs, not metadata."""
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode()).hexdigest()


def in_sync_with_twin(path) -> bool:
    """Do a notebook and its jupytext .py twin hold the same cells (types and sources)?"""
    import jupytext
    cells = lambda n: [(c.cell_type, c.source.strip()) for c in n.cells]
    return cells(jupytext.read(path)) == cells(jupytext.read(Path(path).with_suffix(".py")))


def executed(nb) -> bool:
    """Does the notebook hold the outputs of a run (any output or execution count)?"""
    return any(c.get("outputs") or c.get("execution_count") is not None for c in nb.cells if c.cell_type == "code")


DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]+")


def _texts(output):
    """The text an output shows (streams, errors, text/* data; not images)."""
    if output.output_type == "stream":
        yield output.text
    elif output.output_type == "error":
        yield output.ename + ": " + output.evalue
    else:
        for mime, value in output.get("data", {}).items():
            if mime.startswith("text/") or mime.endswith("json"):
                text = value if isinstance(value, str) else json.dumps(value)
                yield DATA_URI.sub("data:...", text)          # a picture's bytes (GIF's <img>), not text


# an absolute path: /a/b at the start of a word (not inside a URL or a fraction), a well-known
# top-level folder, or a Windows drive
ABS_PATH = re.compile(r"(?<![\w.:/~<>-])/(?:[\w.+-]+/)+|(?<![\w.:/~<>-])/(?:home|root|tmp|Users|usr|opt|var|mnt|"
                      r"srv|content|private|work)\b|\b[A-Za-z]:\\\w")


# folders that are the same on every machine and say where something came from, not who ran it
PUBLIC_PATHS = ("/usr/share/datasets/",)       # Debian's dataset-fashion-mnist (README, .ci/run)


def _abs_paths(text: str):
    for public in PUBLIC_PATHS:
        text = text.replace(public, "<public>/")
    for m in ABS_PATH.finditer(text):
        yield text[text.rfind("\n", 0, m.start()) + 1:].split("\n", 1)[0].strip()[:200]


# What nbconvert's HTML (nbviewer) shows of an output: the first of these it holds (its
# HTMLExporter's display priority; no image/gif). GitHub's renderer is held to the same kinds.
HTML_SHOWS = ("application/javascript", "text/html", "text/markdown", "image/svg+xml", "text/vnd.mermaid",
              "text/latex", "image/png", "image/jpeg", "text/plain")
# A Python object's text stand-in for a picture: "<IPython.core.display.Image object>",
# "<Figure size 640x480 with 1 Axes>", "<matplotlib.image.AxesImage at 0x7f...>"
PLACEHOLDER = re.compile(r"<(?:IPython\.[\w.]+ object|Figure size [^>]*|matplotlib\.[^>]*|[\w.]+ object at 0x[0-9a-f]+)>")


def placeholder(output) -> str | None:
    """What an output shows instead of its picture in nbconvert's HTML and on GitHub (the text of
    an object's repr, or an image kind neither renders), or None when it shows what it holds."""
    data = output.get("data", {})
    shown = next((m for m in HTML_SHOWS if m in data), None)
    if shown not in (None, "text/plain"):
        return None
    hidden = [m for m in data if m.startswith("image/") or m == "video/mp4"]
    text = data.get("text/plain", "")
    if hidden or PLACEHOLDER.search(text):
        return f"{text.strip()[:80]!r}" + (f" ({', '.join(hidden)} is not shown)" if hidden else "")
    return None


def output_problems(nb, name: str) -> list[str]:
    """What breaks the clean-output rules (empty for a stripped notebook)."""
    problems = []
    if "widgets" in nb.metadata:
        problems.append(f"{name}: metadata.widgets is present (GitHub cannot render it)")
    counts = []
    for i, cell in enumerate(nb.cells):
        if "execution" in cell.get("metadata", {}):
            problems.append(f"{name} cell {i}: execution timestamps in its metadata")
        if cell.cell_type != "code":
            continue
        counts.append(cell.get("execution_count"))
        for out in cell.get("outputs", []):
            where = f"{name} cell {i}"
            if out.output_type == "error":
                problems.append(f"{where}: an error output ({out.ename}: {out.evalue[:200]})")
            if WIDGET in out.get("data", {}):
                problems.append(f"{where}: a widget view (blank outside a live kernel)")
            if out.output_type in ("display_data", "execute_result") and WIDGET not in out.get("data", {}) \
                    and (shows := placeholder(out)):
                problems.append(f"{where}: shows {shows} in nbconvert's HTML and on GitHub, not a picture"
                                " (show a GIF with course.figures.GIF; end a figure's cell with plt.show())")
            if out.output_type == "stream" and "\r" in out.text:
                problems.append(f"{where}: a carriage return in its {out.name} (a progress bar's past states)")
            for text in _texts(out):
                problems += [f"{where}: an absolute path: {line!r}" for line in _abs_paths(text)]
    if executed(nb) and counts != list(range(1, len(counts) + 1)):
        problems.append(f"{name}: the code cells did not run once each, top to bottom (counts {counts})")
    size = len(nbformat.writes(nb).encode()) + 1
    if size > MAX_BYTES:
        problems.append(f"{name}: {size / 1e6:.2f} MB, more than {MAX_BYTES / 1e6:.1f} MB")
    return problems


def stale(nb, path: Path) -> list[str]:
    """[] when the notebook has no outputs, or its outputs were made from its current sources."""
    if not executed(nb):
        return []
    meta = nb.metadata.get(META, {})
    if meta.get("source_sha256") != source_hash(nb):
        why = "its sources changed after its outputs were made" if meta else "its outputs were not recorded by the command"
        return [f"{Path(path).name}: stale outputs ({why}): re-make them with `{command(path)}`"]
    return []


def check(path) -> list[str]:
    """Every problem of one notebook file: clean-output rules and fresh outputs. [] when none."""
    nb = nbformat.read(path, as_version=4)
    return output_problems(nb, Path(path).name) + stale(nb, path)


def check_together(paths) -> list[str]:
    """Outputs in all the notebooks or in none, and from one run (one mode, one machine)."""
    nbs = {Path(p): nbformat.read(p, as_version=4) for p in paths}
    with_outputs = [p for p, nb in nbs.items() if executed(nb)]
    if not with_outputs:
        return []
    problems = []
    missing = [p for p in nbs if p not in with_outputs]
    if missing:
        problems.append(f"no outputs in {', '.join(p.name for p in missing)}, while "
                        f"{', '.join(p.name for p in with_outputs)} have them: record them too with "
                        f"`python -m fmnist_ldm.record {' '.join(command(p).split()[-1] for p in missing)}`")
    runs = {(nbs[p].metadata.get(META, {}).get("mode"), nbs[p].metadata.get(META, {}).get("machine")) for p in with_outputs}
    if len(runs) > 1:
        problems.append(f"the notebooks' outputs come from different runs (mode, machine): {sorted(map(str, runs))}")
    return problems


def identity_problems(nb, name: str) -> list[str]:
    """This machine's home folder, host name and user name, anywhere in the outputs."""
    names = {str(Path.home()): "home folder", socket.gethostname(): "host name", getpass.getuser(): "user name"}
    names = {k: v for k, v in names.items() if len(k) >= 4 and k not in ("/", "root", "user")}
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            for text in _texts(out):
                found += [f"{name} cell {i}: the {what} {word!r}" for word, what in names.items()
                          if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)]
    return found


# ---------------------------------------------------------------- running

def default_mode() -> str:
    """The mode a student's notebook picks on this machine (outside CI, FMNIST_LDM_MODE unset)."""
    from .notebook import notebook_mode
    saved = {k: os.environ.pop(k) for k in ("FMNIST_LDM_MODE", "CI") if k in os.environ}
    try:
        return notebook_mode()[0]
    finally:
        os.environ.update(saved)


def record(path: Path, mode: str, machine: str) -> tuple[list[str], float]:
    """Run one notebook, clean its outputs and write them into it. Returns (problems, seconds);
    with problems the notebook is left as it was and the run is saved to a temporary folder."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    path = Path(path).resolve()
    twin = path.with_suffix(".py")
    nb = nbformat.read(path, as_version=4)
    if twin.exists() and not in_sync_with_twin(path):
        return [f"{path.name} and {twin.name} differ: run `jupytext --sync {path}` first"], 0.0
    for cell in nb.cells:                              # start from nothing, as a fresh clone does
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    sources = source_hash(nb)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "FMNIST_LDM_MODE")}
    if mode != default_mode():                         # else the notebook says why, as a student's does
        env["FMNIST_LDM_MODE"] = mode
    client = NotebookClient(nb, timeout=6 * 3600, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                            resources={"metadata": {"path": str(path.parent)}}, record_timing=False,
                            store_widget_state=True)    # nbclient's Output-widget hook needs it; clean() drops it
    t0, problems = time.perf_counter(), []
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        problems.append(f"{path.name}: a cell failed:\n{str(e)[-3000:]}")
    except Exception as e:                             # the kernel or nbclient itself: say so, go on to the next
        problems.append(f"{path.name}: the run stopped ({type(e).__name__}: {e}); nothing of it was written")
        return problems, time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    clean(nb, path.parent)
    nb.metadata[META] = {"source_sha256": sources, "mode": mode, "machine": machine}
    problems += output_problems(nb, path.name) + identity_problems(nb, path.name)
    if problems:
        keep = Path(tempfile.mkdtemp(prefix="fmnist_ldm-record-")) / path.name
        nbformat.write(nb, keep)
        problems.append(f"{path.name} left as it was; this run is in {keep}")
    else:
        nbformat.write(nb, path)
    return problems, seconds


def unreadable(path: Path) -> str | None:
    """Why `path` names no notebook this command can record or check (one line), or None."""
    if path.is_dir():
        return f"{path} is a folder: name notebooks (e.g. {path / '01_data.ipynb'}), or none for all of them"
    if path.suffix not in (".ipynb", ".py"):
        return f"{path} is not a notebook: give a .ipynb file or its .py twin"
    nb = path.with_suffix(".ipynb")
    if not nb.is_file():
        return f"{nb} does not exist"
    try:
        nbformat.validate(nbformat.read(nb, as_version=4))
    except Exception as e:         # nbformat raises many kinds (NotJSONError, ValidationError, TypeError, ...)
        first = (str(e).strip().splitlines() or [""])[0][:120]
        return f"{nb} is not a readable notebook ({type(e).__name__}: {first}); restore it, e.g. with git checkout"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist_ldm.record", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("fast", "full"), help="default: full on a CUDA GPU, else fast")
    parser.add_argument("--check", action="store_true", help="run nothing: check the outputs (what CI does)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/0*.ipynb")
    args = parser.parse_args(argv)
    bad = [why for p in args.notebooks if (why := unreadable(p))]
    if bad:                                            # before any work: nothing removed, nothing run
        print(f"error: {bad[0]}", file=sys.stderr)
        return 2
    paths = [p.with_suffix(".ipynb") for p in args.notebooks] or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    if args.check:
        problems = [q for p in paths for q in check(p)] + check_together(paths)
        print("\n".join(problems) or f"{len(paths)} notebooks: outputs clean and made from their current sources"
              f" ({sum(executed(nbformat.read(p, as_version=4)) for p in paths)} hold outputs)")
        return 1 if problems else 0
    from ..config import setup_cpu
    from ..device import get_device, machine
    mode = args.mode or default_mode()
    setup_cpu()                                        # as notebook_preset does: the kernel's threads
    where = machine(get_device())
    for runs in sorted({p.resolve().parent / "runs" for p in paths}):
        if runs.exists():                              # checkpoints of an earlier run would be resumed
            shutil.rmtree(runs)
            print(f"removed {runs.name}/ beside the notebooks: every notebook starts from nothing, as in CI")
    print(f"recording {len(paths)} notebook(s) in {mode} mode on {where}")
    failed, total = [], 0.0
    for p in paths:
        problems, seconds = record(p, mode, where)
        total += seconds
        if problems:
            failed.append(p.name)
            print(f"{p.name}: FAILED after {seconds / 60:.1f} min\n  " + "\n  ".join(problems), file=sys.stderr)
        else:
            size = p.stat().st_size
            images = sum(1 for c in nbformat.read(p, as_version=4).cells for o in c.get("outputs", [])
                         if any(m.startswith("image/") for m in o.get("data", {})))
            print(f"{p.name}: {seconds / 60:.1f} min, {size / 1e6:.2f} MB, {images} image(s)", flush=True)
    print(f"all: {total / 60:.1f} min in {mode} mode on {where}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
