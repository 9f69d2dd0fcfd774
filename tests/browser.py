"""Headless Chromium for the tests that open published pages as a person would, and the folder
where they keep their screenshots (printed at the end of the run)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROJECT_DIR = Path(__file__).resolve().parent.parent


def artifacts_dir() -> Path:
    """Screenshots are kept here for a person to look at (git-ignored): $CLEARANCE_TEST_ARTIFACTS or .test-artifacts/."""
    folder = Path(os.environ.get("CLEARANCE_TEST_ARTIFACTS", PROJECT_DIR / ".test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def launch(playwright):
    assert Path(CHROMIUM).exists(), "headless Chromium is needed: apt-get install chromium fonts-noto-cjk"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


class Watched:
    """A page that records what a person must never meet: a request off the machine, a console
    error, a script error, a dialog (alert, confirm, prompt) or a script of the page's data running."""

    def __init__(self, page) -> None:
        self.page, self.requests, self.errors, self.dialogs = page, [], [], []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def off_machine_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(("file:", "data:", "blob:", "about:"))]

    def assert_clean(self) -> None:
        assert self.dialogs == [], f"a value ran as script: dialogs {self.dialogs}"
        assert self.page.evaluate("window.__injected === undefined"), "a value ran as script"
        assert self.off_machine_requests() == []
        assert self.errors == []
