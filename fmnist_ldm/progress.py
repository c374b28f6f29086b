"""Progress bars: tqdm's text bar everywhere, notebooks included.

A widget bar (what tqdm.auto picks in Jupyter) is stored in a saved notebook as the text it had
when it was first drawn, "0%", and that is all a reader of the saved or rendered copy sees; a
text bar redraws itself with carriage returns, so its last state (100 %) is what stays.
"""
from __future__ import annotations

import sys

from tqdm.std import tqdm


def progress(iterable=None, **kwargs) -> tqdm:
    """tqdm's text bar: on stdout in a Jupyter kernel (no red stderr box, a fixed width, since a
    kernel has no terminal to measure), on stderr elsewhere."""
    if "ipykernel" in sys.modules:
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("ncols", 90)
    return tqdm(iterable, **kwargs)
