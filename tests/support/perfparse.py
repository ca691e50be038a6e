"""A strict parser of plugin output per the Monitoring Plugins development guidelines.

    STATUS TEXT | 'label'=value[UOM];[warn];[crit];[min];[max] ...

Strict where the guidelines are: a label is quoted when it holds a space (and never holds
`=` or an unescaped `'`); value, min and max are `[-0-9.]` decimals (no exponent, no
locale comma) or `U` for the value; warn and crit are ranges `[@][start:][end]` with `~`
for minus infinity; the UOM is one of s ms us % B KB MB TB c (or none); trailing empty
fields may be dropped; labels are unique. Anything else raises PerfdataError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATUS_LINE = re.compile(r"^[A-Z0-9_]+ (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]*$")
_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_RANGE = re.compile(rf"^@?(?:(?:{_NUMBER}|~):)?(?:{_NUMBER})?$")
_VALUE = re.compile(rf"^({_NUMBER}|U)(s|ms|us|%|B|KB|MB|TB|c)?$")
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")
_PLAIN_LABEL = re.compile(r"^[^'= ]+$")


class PerfdataError(ValueError):
    pass


@dataclass(frozen=True)
class PerfValue:
    label: str
    value: float | None
    uom: str
    warn: str
    crit: str
    min: float | None
    max: float | None


def split_output(first_line: str) -> tuple[str, str]:
    """(status text, perfdata text) of a plugin's first line."""
    text, sep, perf = first_line.partition("|")
    if not STATUS_LINE.match(text.rstrip() if sep else text):
        raise PerfdataError(f"status line does not read 'NAME STATE - text': {text!r}")
    return text.rstrip(), perf.strip()


def _tokens(perf: str) -> list[str]:
    tokens, i = [], 0
    while i < len(perf):
        if perf[i] == " ":
            i += 1
            continue
        start = i
        if perf[i] == "'":
            i += 1
            while True:
                j = perf.find("'", i)
                if j < 0:
                    raise PerfdataError(f"unterminated quoted label in {perf[start:]!r}")
                if perf[j + 1:j + 2] == "'":
                    i = j + 2
                    continue
                i = j + 1
                break
            if perf[i:i + 1] != "=":
                raise PerfdataError(f"quoted label not followed by '=': {perf[start:]!r}")
        end = perf.find(" ", i)
        end = len(perf) if end < 0 else end
        tokens.append(perf[start:end])
        i = end
    return tokens


def parse_perfdata(perf: str) -> dict[str, PerfValue]:
    values: dict[str, PerfValue] = {}
    for token in _tokens(perf):
        if token.startswith("'"):
            i = 1
            while True:
                close = token.find("'", i)
                if token[close + 1:close + 2] != "'":
                    break
                i = close + 2
            label = token[1:close].replace("''", "'")
            rest = token[close + 2:]
        else:
            label, sep, rest = token.partition("=")
            if not sep or not _PLAIN_LABEL.match(label):
                raise PerfdataError(f"bad unquoted label in {token!r}")
        if not label or "=" in label:
            raise PerfdataError(f"empty label or '=' in label: {token!r}")
        fields = rest.split(";")
        if len(fields) > 5:
            raise PerfdataError(f"more than 5 fields in {token!r}")
        fields += [""] * (5 - len(fields))
        match = _VALUE.match(fields[0])
        if match is None:
            raise PerfdataError(f"value {fields[0]!r} of {label!r} is not a plain decimal+UOM")
        for name, threshold in (("warn", fields[1]), ("crit", fields[2])):
            if threshold and not _RANGE.match(threshold):
                raise PerfdataError(f"{name} {threshold!r} of {label!r} is not a range")
        bounds = []
        for name, bound in (("min", fields[3]), ("max", fields[4])):
            if bound and not _NUMBER_RE.match(bound):
                raise PerfdataError(f"{name} {bound!r} of {label!r} is not a plain decimal")
            bounds.append(float(bound) if bound else None)
        if label in values:
            raise PerfdataError(f"label {label!r} appears twice")
        value = None if match.group(1) == "U" else float(match.group(1))
        values[label] = PerfValue(label, value, match.group(2) or "", fields[1], fields[2],
                                  bounds[0], bounds[1])
    return values


def range_alerts(threshold: str, value: float) -> bool:
    """True when `value` is outside the range (inside it, with a leading '@')."""
    inside = threshold.startswith("@")
    spec = threshold[1:] if inside else threshold
    low_text, sep, high_text = spec.rpartition(":")
    if not sep:
        low_text, high_text = "0", spec
    low = float("-inf") if low_text == "~" else float(low_text or 0)
    high = float(high_text) if high_text else float("inf")
    outside = value < low or value > high
    return not outside if inside else outside
