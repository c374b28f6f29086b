"""How a recorded notebook's outputs are committed (record.py runs the notebook, then this):
no widget state or views, progress bars at their last state, no absolute paths, figures no larger
than they need to be. `clean` changes a notebook in place."""
from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]         # the checkout, two folders above this file
WIDGET = "application/vnd.jupyter.widget-view+json"
PNG_MAX_WIDTH = 1400                                  # px: wider figures are scaled down to this


def _terminal(text: str) -> str:
    """What a terminal shows of a stream: each carriage return starts the line again, and what
    follows overwrites what was there (a progress bar keeps its last state)."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part):]
        lines.append(shown.rstrip() if "\r" in line else shown)
    return "\n".join(lines)


def _widget_text_is_meaningful(text: str) -> bool:
    """A widget's text/plain is its model's repr (VBox(children=...)) or a progress bar's first
    state: neither tells a reader anything."""
    text = text.strip()
    return bool(text) and not re.match(r"^\w+\(", text) and not re.search(r"\d+%\|", text)


def _smaller_png(data: str) -> str:
    """A PNG at most PNG_MAX_WIDTH wide, in grey levels or a 256-colour palette: the course's figures
    are grey images, text and colour maps of 256 entries, so this loses nothing one can see (an
    opaque alpha channel or a grey picture's three equal channels lose nothing at all)."""
    from PIL import Image, ImageChops
    img = Image.open(io.BytesIO(base64.b64decode(data)))
    if img.mode == "RGBA" and img.getextrema()[3][0] == 255:
        img = img.convert("RGB")
    if img.width > PNG_MAX_WIDTH:
        img = img.resize((PNG_MAX_WIDTH, round(img.height * PNG_MAX_WIDTH / img.width)), Image.LANCZOS)
    if img.mode == "RGB":
        r, g, b = img.split()
        grey = ImageChops.difference(r, g).getbbox() is None and ImageChops.difference(g, b).getbbox() is None
        img = img.convert("L") if grey else img.quantize(256, dither=Image.Dither.NONE)
    elif img.mode == "RGBA":
        img = img.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    new = base64.b64encode(buf.getvalue()).decode()
    return new if len(new) < len(data) else data


def clean(nb, nb_dir: Path):
    """The outputs as they are committed (see the module's docstring). Changes nb in place."""
    nb.metadata.pop("widgets", None)
    here, root = str(Path(nb_dir).resolve()), str(ROOT)
    up = os.path.relpath(ROOT, here)
    paths = {here + os.sep: "", here: ".", root + os.sep: up + os.sep, root: up}       # in one pass
    pattern = re.compile("|".join(re.escape(k) for k in sorted(paths, key=len, reverse=True)))
    relative = lambda text: pattern.sub(lambda m: paths[m.group()], text)

    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            data = out.get("data", {})
            if WIDGET in data:
                text = data.get("text/plain", "")
                if not _widget_text_is_meaningful(text):
                    continue
                out.data = {"text/plain": text}
            if out.output_type == "stream":
                if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == out.name:
                    outputs[-1].text += out.text
                    continue
            for mime, value in data.items():
                if isinstance(value, str) and not mime.startswith("image/") or mime == "image/svg+xml":
                    data[mime] = relative(value)
            if "image/png" in data:
                data["image/png"] = _smaller_png(data["image/png"])
            outputs.append(out)
        for out in outputs:
            if out.output_type == "stream":
                out.text = relative(_terminal(out.text))
            elif out.output_type == "error":
                out.evalue = relative(out.evalue)
                out.traceback = [relative(line) for line in out.traceback]
        cell.outputs = outputs
    return nb
