"""Perfdata as the Monitoring Plugins guidelines write it: 'label'=value[UOM];warn;crit;min;max.

Values are plain decimals (never an exponent: graphers reject `1.67772e+07`), labels are
quoted when they hold anything but letters, digits, `_`, `.` and `-`, and a threshold is the
Nagios range "N": the check alerts when the value goes above N.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from mongooseim_agent.snapshot import Perf

_PLAIN_LABEL = re.compile(r"^[A-Za-z0-9_.-]+$")
_REPLACED = re.compile(r"[\s'=\x00-\x1f\x7f]")
UNITS = frozenset({"", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c"})


def as_perf(value: float | Perf) -> Perf:
    return value if isinstance(value, Perf) else Perf(value)


def decimal(value: float) -> str:
    """A plain decimal: integers as such, fractions to the microsecond; 'U' when undefined."""
    if not math.isfinite(value):
        return "U"
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text


def label(text: str) -> str:
    """The label, quoted where the guidelines need it.

    ' and = cannot be in a label at all, and whitespace breaks metric receivers such as
    Graphite: each becomes `_`.
    """
    text = _REPLACED.sub("_", text) or "_"
    return text if _PLAIN_LABEL.match(text) else f"'{text}'"


def render(name: str, perf: Perf) -> str:
    if perf.uom not in UNITS:
        raise ValueError(f"perfdata {name}: unit {perf.uom!r} is not one of {sorted(UNITS)}")
    fields = [
        "" if v is None else decimal(v) for v in (perf.warn, perf.crit, perf.min, perf.max)
    ]
    while fields and not fields[-1]:
        fields.pop()
    value = decimal(perf.value)
    head = f"{label(name)}={value}{perf.uom if value != 'U' else ''}"
    return ";".join([head, *fields])


def render_all(items: Iterable[tuple[str, float | Perf]]) -> str:
    """Space-separated perfdata; a label seen twice keeps its first value (labels are keys)."""
    seen: set[str] = set()
    parts = []
    for name, value in items:
        if name in seen:
            continue
        seen.add(name)
        parts.append(render(name, as_perf(value)))
    return " ".join(parts)


def above(ratio: float, size: int) -> int:
    """The threshold N with `used > N` exactly when `used / size >= ratio`, for whole counts.

    The checks compare ratios; Icinga compares the value with N, so N is computed from the
    same comparison rather than rounded from `ratio * size`.
    """
    if size <= 0:
        return 0
    n = max(math.ceil(ratio * size), 0)
    while n > 0 and (n - 1) / size >= ratio:
        n -= 1
    while n / size < ratio:
        n += 1
    return n - 1
