"""The lecture deck: presentation/deck.ipynb (paired with deck.py) run and written as one HTML file.

    python -m fmnist_ldm.course.deck            (re-make presentation/deck.slides.html)
    python -m fmnist_ldm.course.deck --check    (run nothing: is the committed HTML fresh?)

The deck runs top to bottom in a fresh kernel (about a minute on a 2-core CPU), and nbconvert's
reveal.js exporter writes its slides, without the code, with the speaker notes (cells of slide type
"notes": press S in the browser). Every picture is inside the file (a data URI): the HTML can be
mailed or projected from anywhere; reveal.js and MathJax come from their CDNs, as nbconvert's
slides do. The HTML carries a hash of what it was made from: the deck's cells and every file the
deck reads (INPUTS); `--check` and tests/test_presentation.py fail when either changed since.

The deck also reads figures out of the recorded notebooks (`recorded_output`): what a lecturer
shows is then what the notebook shows, from the same run.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
DECK = ROOT / "presentation" / "deck.ipynb"
HTML = DECK.with_name("deck.slides.html")
# every file the deck reads: re-make the HTML when one of them changes (test_presentation checks
# that deck.py names no file outside this list)
INPUTS = ("model/vae.safetensors", "model/unet.safetensors", "benchmarks/distill.json", "benchmarks/fid_vs_n.md",
          "benchmarks/guidance.md", "benchmarks/results.png", "assets/denoising_path_sneaker.png",
          "assets/generated_samples.png", "assets/distilled_vs_teacher.png", "assets/diffusion_dress.gif",
          "assets/diffusion_sneaker.gif", "assets/diffusion_bag.gif",
          "notebooks/05_application.ipynb", "notebooks/06_evaluation.ipynb")
STAMP = "fmnist_ldm-deck-sources"              # <meta name=STAMP content=sha256> in the HTML
WIDTH, HEIGHT = 1280, 720                       # a projector's 16:9
STYLE = """<style type="text/css">
.reveal .slides section { text-align: left; }
.reveal h1 { font-size: 2.0em; } .reveal h2 { font-size: 1.45em; margin-bottom: 0.3em; }
.reveal .jp-RenderedHTMLCommon, .reveal .jp-RenderedMarkdown { font-size: 26px; line-height: 1.35; }
.reveal .jp-RenderedHTMLCommon table { font-size: 22px; margin: 0.2em 0; }
.reveal .jp-RenderedHTMLCommon td, .reveal .jp-RenderedHTMLCommon th { padding: 0.15em 0.6em; }
.reveal .jp-OutputArea-output img { max-height: 430px; width: auto; max-width: 100%; }
.reveal .jp-OutputArea-output img.tall { max-height: 520px; }
.reveal .jp-RenderedText pre { font-size: 18px; }
.reveal .small-table table { font-size: 18px; }
.reveal .small-table td, .reveal .small-table th { padding: 0.05em 0.5em; white-space: nowrap; }
.reveal .jp-OutputPrompt, .reveal .jp-InputPrompt { display: none; }
.reveal .jp-OutputArea-output { padding: 0; }
</style>"""


# ---------------------------------------------------------------- what the deck reads

def recorded_output(notebook: str, heading: str, nth_image: int = 0):
    """From a recorded notebook (notebooks/<notebook>): the nth image its cells show after the
    markdown cell that holds `heading`, and the text that the same cell printed.
    Returns (png bytes, printed text, the run's metadata: mode and machine)."""
    from .record import META, executed
    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    if not executed(nb):
        raise RuntimeError(f"notebooks/{notebook} holds no outputs: record it first (python -m fmnist_ldm.record)")
    start = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and heading in c.source), None)
    if start is None:
        raise KeyError(f"notebooks/{notebook} has no heading {heading!r}")
    seen = 0
    for cell in nb.cells[start + 1:]:
        for out in cell.get("outputs", []):
            if "image/png" in out.get("data", {}):
                if seen == nth_image:
                    text = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
                    return base64.b64decode(out.data["image/png"]), text, dict(nb.metadata.get(META, {}))
                seen += 1
    raise KeyError(f"notebooks/{notebook}: no image {nth_image} after {heading!r}")


def markdown_table(path, first_column: str | None = None) -> list[dict]:
    """The first Markdown table of a file as rows of {header: cell} (text, as written)."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip().startswith("|")]
    cells = lambda ln: [c.strip() for c in ln.strip("|").split("|")]
    header, rows = cells(lines[0]), [cells(ln) for ln in lines[2:]]
    return [dict(zip(header, r)) for r in rows]


def png_of(fig, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes (closed: it is shown once, through `slide_figure`)."""
    import io
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def slide_figure(picture: bytes, height: int = 430, side: str = "", mime: str = "image/png", alt: str = "figure"):
    """An HTML output: a picture (inside, as a data URI) `height` px high on the slide, with `side`
    (HTML: a few lines, a table) beside it on the right."""
    import html as html_
    from IPython.display import HTML
    data = base64.b64encode(picture).decode()
    if mime == "image/png":
        from .clean_outputs import _smaller_png
        data = _smaller_png(data)                # grey or a 256-colour palette, as the notebooks' figures
    src = f"data:{mime};base64,{data}"
    img = f'<img src="{src}" alt="{html_.escape(alt)}" style="height:{height}px;max-height:{height}px;width:auto;margin:0">'
    if not side:
        return HTML(f'<div style="text-align:center">{img}</div>')
    return HTML(f'<div style="display:flex;gap:28px;align-items:flex-start"><div style="flex:none">{img}</div>'
                f'<div style="flex:1;min-width:320px;font-size:24px;line-height:1.35">{side}</div></div>')


def html_table(header, rows) -> str:
    """A small HTML table (the cells already formatted)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---------------------------------------------------------------- freshness

def sources_hash() -> str:
    """sha256 of the deck's cells (types, sources, slide types) and of every file in INPUTS."""
    nb = nbformat.read(DECK, as_version=4)
    h = hashlib.sha256()
    for c in nb.cells:
        h.update(repr((c.cell_type, c.source, c.metadata.get("slideshow", {}).get("slide_type"))).encode())
    for name in INPUTS:
        h.update(name.encode() + b"\0" + hashlib.sha256((ROOT / name).read_bytes()).digest())
    return h.hexdigest()


def stamp_of(html: str) -> str | None:
    m = re.search(rf'<meta name="{STAMP}" content="([0-9a-f]{{64}})"', html)
    return m.group(1) if m else None


# src= / href= that leave the file: not a data URI, not an anchor in the page, not http(s)
LOCAL_LINK = re.compile(r"""\b(?:src|href)\s*=\s*["'](?!data:|#|https?://)([^"']+)["']""", re.I)


def problems(html: str | None = None) -> list[str]:
    """What is wrong with the committed HTML: missing, stale, or linking to local files. [] when none."""
    if html is None:
        if not HTML.exists():
            return [f"{HTML.relative_to(ROOT)} is missing: make it with `python -m fmnist_ldm.course.deck`"]
        html = HTML.read_text(encoding="utf-8")
    found = []
    if stamp_of(html) != sources_hash():
        found.append(f"{HTML.relative_to(ROOT)} is stale (the deck or a file it reads changed since): "
                     "re-make it with `python -m fmnist_ldm.course.deck`")
    found += [f"{HTML.relative_to(ROOT)} links to a local file: {link[:100]}" for link in LOCAL_LINK.findall(html)]
    return found


# ---------------------------------------------------------------- building

def build(out: Path = HTML, timeout: int = 600) -> Path:
    """Run the deck in a fresh kernel and write its slides as one HTML file. Returns the path."""
    from nbclient import NotebookClient
    from nbconvert import SlidesExporter
    from .clean_outputs import clean
    nb = nbformat.read(DECK, as_version=4)
    stamp = sources_hash()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(DECK.parent)}}).execute()
    clean(nb, DECK.parent)                       # relative paths, smaller PNGs, as in the notebooks
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    if errors:
        raise RuntimeError(f"the deck raised {errors[0].ename}: {errors[0].evalue}")
    exporter = SlidesExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                              reveal_width=str(WIDTH), reveal_height=str(HEIGHT), reveal_number="c/t",
                              reveal_transition="none")
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": "fmnist_ldm: the lecture"}})
    html = html.replace("</head>", f'<meta name="{STAMP}" content="{stamp}">\n{STYLE}\n</head>', 1)
    local = LOCAL_LINK.findall(html)
    if local:
        raise RuntimeError(f"the slides link to local files: {local[:5]} (show pictures as outputs, not Markdown links)")
    Path(out).write_text(html, encoding="utf-8")
    return Path(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fmnist_ldm.course.deck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="run nothing: is the committed HTML fresh and self-contained?")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) or f"{HTML.relative_to(ROOT)}: made from the current deck and its inputs, self-contained")
        return 1 if found else 0
    import time
    t0 = time.perf_counter()
    path = build()
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1e6:.2f} MB, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
