"""`promtool check metrics` on a scrape, and the naming rules promtool does not know."""

from __future__ import annotations

import re
import subprocess

from tests.support.require import require_binary


def promtool_problems(exposition: str) -> list[str]:
    """promtool's complaints about a Prometheus text scrape (empty when it lints clean)."""
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "metrics"], input=exposition,
                            capture_output=True, text=True, timeout=60, check=False)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0 and not lines:
        lines = [f"promtool exited {result.returncode}"]
    return lines


def naming_problems(exposition: str) -> list[str]:
    """The project's own rules: no `node` label on mongooseim_ series (one agent watches one
    node; Kubernetes relabels `node` in), no `_count` suffix outside histograms/summaries."""
    problems = []
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M))
    for line in exposition.splitlines():
        if line.startswith("#") or not line.startswith("mongooseim_"):
            continue
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if re.search(r'[{,]node="', line):
            problems.append(f"{name} carries a node label: {line}")
        if name.endswith("_count") and types.get(name.removesuffix("_count")) not in {
                "histogram", "summary"}:
            problems.append(f"{name}: _count suffix on a {types.get(name, 'untyped')}")
    return sorted(set(problems))
