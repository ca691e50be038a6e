"""Headless Chromium (Debian `chromium`) for looking at the agent's pages as a person would."""

from __future__ import annotations

import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from tests.support.require import require_binary

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-default-apps", "--hide-scrollbars",
)


class Chromium:
    def __init__(self) -> None:
        self.binary = require_binary("chromium")

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            return subprocess.run(
                [self.binary, *FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True, text=True, timeout=90, check=True,
            )

    def dump_dom(self, url: str) -> str:
        return self._run("--dump-dom", url).stdout

    def screenshot(self, url: str, path: Path, size: str = "1200,1500") -> Path:
        self._run(f"--screenshot={path}", f"--window-size={size}", url)
        if not path.exists() or path.stat().st_size == 0:
            raise AssertionError(f"chromium wrote no screenshot to {path}")
        return path


class PageDom(HTMLParser):
    """What the landing-page tests assert on: title, heading, banner, rows, drain, plots."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.title = ""
        self.heading = ""
        self.banner_class = ""
        self.banner = ""
        self.drain = ""
        self.rows: list[tuple[str, str]] = []  # (data-check, class) in page order
        self.svgs = 0
        self._in: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-check"):
            self.rows.append((a["data-check"] or "", a.get("class") or ""))
        if tag == "svg":
            self.svgs += 1
        element = a.get("id") or tag
        if a.get("id") == "banner":
            self.banner_class = a.get("class") or ""
        self._in.append(element)

    def handle_endtag(self, tag: str) -> None:
        if self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        for place in ("title", "heading", "banner", "drain"):
            if place in self._in:
                setattr(self, place, getattr(self, place) + data)
