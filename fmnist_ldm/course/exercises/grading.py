"""How every exercise is graded: the student's function against the library's on fixed inputs.

Each check calls the student's function on a few fixed inputs and compares the result with the
library's own implementation, the one the rest of the course runs (torch.testing.assert_close).
It prints one line and returns a passing Verdict when they agree. When they do not, it returns
a failing one and prints a hint: the result is compared with the usual mistakes (a missing square root, a sign,
sin and cos swapped, an off-by-one t) and the matching one is named. A student function that
raises is a wrong answer with its error shown, never a crash of the checker.

A Verdict is true or false (`assert check_psnr(my_psnr)`) and shows nothing in a notebook: the
printed line is the answer, and the cell that ends with the check shows no `False` echoed under it.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch


class Verdict:
    """What a check returns: true when the answer matched the library. In a notebook it displays
    nothing (the check has printed its line); elsewhere its repr says which."""
    __slots__ = ("passed",)

    def __init__(self, passed: bool):
        self.passed = bool(passed)

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other):
        other = other.passed if isinstance(other, Verdict) else other
        return self.passed == other if isinstance(other, bool) else NotImplemented

    def __hash__(self):
        return hash(self.passed)

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self):
        """IPython shows the last expression of a cell through this: nothing more to show."""


PASSED, FAILED = Verdict(True), Verdict(False)


def close(a, b, rtol=1e-4, atol=1e-5) -> bool:
    try:
        torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), rtol=rtol, atol=atol)
        return True
    except (AssertionError, TypeError, ValueError, RuntimeError):
        return False


def where_off(got: torch.Tensor, expected: torch.Tensor, axes: Sequence[str] = (), rtol=1e-4, atol=1e-5) -> str:
    """Where two same-shaped tensors differ, one axis at a time: "images 1, 3 of 5; every channel".
    axes names the dimensions ("image", "channel", "row", "column"); unnamed ones read "dim k"."""
    bad = ~torch.isclose(got.double(), expected.double(), rtol=rtol, atol=atol)
    parts = []
    for d in range(bad.dim()):
        name = axes[d] if d < len(axes) else f"dim {d}"
        n = bad.shape[d]
        hit = bad.movedim(d, 0).reshape(n, -1).any(1).nonzero().flatten().tolist()
        if len(hit) == n:
            parts.append(f"every {name}" if n > 1 else f"the one {name}")
        else:
            shown = ", ".join(map(str, hit[:8])) + (", ..." if len(hit) > 8 else "")
            plural = "s" if len(hit) > 1 and d < len(axes) else ""
            parts.append(f"{name}{plural} {shown} (of 0..{n - 1})")
    return "; ".join(parts)


def grade(title: str, attempt: Callable, expected, mistakes=(), rtol=1e-4, atol=1e-5,
          axes: Sequence[str] = ()) -> Verdict:
    """Run attempt(); compare with expected; name the first mistake whose result it matches.
    mistakes: (what that mistake computes, hint) pairs. axes: names of the result's dimensions,
    so that an unrecognised wrong answer is told where it is off (see where_off)."""
    try:
        got = attempt()
    except NotImplementedError:
        print(f"✗ {title}: not written yet (the function raises NotImplementedError).")
        return FAILED
    except Exception as e:                       # the student's error, shown, not the checker's
        print(f"✗ {title}: your function raised {type(e).__name__}: {str(e)[:300]}")
        return FAILED
    if got is None or got is Ellipsis:
        print(f"✗ {title}: your function returned {got!r}; return the result.")
        return FAILED
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            print(f"✗ {title}: return {len(expected)} values as a tuple, not {type(got).__name__}.")
            return FAILED
        pairs = list(zip(got, expected))
    else:
        pairs = [(got, expected)]
    try:
        pairs = [(torch.as_tensor(g), torch.as_tensor(e)) for g, e in pairs]
    except Exception as e:
        print(f"✗ {title}: return tensors; got {type(got).__name__} ({str(e)[:200]}).")
        return FAILED
    if all(close(g, e, rtol, atol) for g, e in pairs):
        print(f"✓ {title}: matches the library.")
        return PASSED
    for wrong, hint in mistakes:                 # a known mistake, whatever its shape
        wrong = wrong if isinstance(wrong, tuple) else (wrong,)
        if len(wrong) == len(pairs) and all(close(g, w, rtol, atol) for (g, _), w in zip(pairs, wrong)):
            print(f"✗ {title}: {hint}")
            return FAILED
    for g, e in pairs:
        if g.shape != e.shape:
            print(f"✗ {title}: shape {tuple(g.shape)}, expected {tuple(e.shape)}.")
            return FAILED
    for i, (g, e) in enumerate(pairs):
        if close(g, e, rtol, atol):
            continue
        which = f"returned value {i + 1} of {len(pairs)} differs" if len(pairs) > 1 else "the values differ"
        worst = float((g.double() - e.double()).abs().nan_to_num(float("inf")).max())
        where = f", off at {where_off(g, e, axes, rtol, atol)}" if g.dim() else ""
        print(f"✗ {title}: the shape is right but {which} (largest difference {worst:.3g}{where}). "
              "Compare your line with the equation above it.")
        return FAILED
    return FAILED


def gen(seed=0):
    return torch.Generator().manual_seed(seed)
