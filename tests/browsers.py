"""Headless Chromium as every browser test starts it: Debian's build, offline and quiet (no sync,
no updates, no background networking), no GPU."""
import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch(playwright):
    """A Chromium browser from a sync_playwright() context."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
