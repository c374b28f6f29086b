# Notebooks under pytest (nbval) run in fast mode; the kernel inherits this environment.
import os
from collections import defaultdict

os.environ.setdefault("FMNIST_LDM_MODE", "fast")

_seconds = defaultdict(float)      # wall time per notebook: its cells' setup (kernel start), call, teardown


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _seconds[os.path.basename(path)] += report.duration


def pytest_terminal_summary(terminalreporter):
    """How long each notebook took top to bottom, so the README's timings are measured ones."""
    if _seconds:
        from fmnist_ldm.device import get_device, machine
        terminalreporter.section(f"notebook times ({os.environ['FMNIST_LDM_MODE']} mode, {machine(get_device())})")
        for name, s in sorted(_seconds.items()):
            terminalreporter.write_line(f"{name:32s} {s / 60:5.1f} min")
        terminalreporter.write_line(f"{'all':32s} {sum(_seconds.values()) / 60:5.1f} min")
