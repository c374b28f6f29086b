"""Progress bars are text bars, whose last state is what a saved notebook keeps (not a widget's 0 %)."""
import io
import sys

from fmnist_ldm.progress import progress


def test_a_finished_bar_ends_at_100_percent(monkeypatch):
    out = io.StringIO()
    monkeypatch.setitem(sys.modules, "ipykernel", sys)      # as inside a Jupyter kernel
    monkeypatch.setattr(sys, "stdout", out)
    for _ in progress(range(7), desc="steps", mininterval=0):
        pass
    last = out.getvalue().split("\r")[-1]
    assert "100%" in last and "7/7" in last and len(last.rstrip("\n")) <= 90, repr(last)


def test_outside_a_kernel_the_bar_goes_to_stderr(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    list(progress(range(3), mininterval=0))
    assert "3/3" in err.getvalue()
