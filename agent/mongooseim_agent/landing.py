"""The landing page `/`: what a person woken at 3 a.m. needs first, from memory only.

Host and node in the title and heading; a banner with the worst state and the counts; the
drain (coloured, with its reason, by whom and how long ago); the problems first with what to
do, hints only where there is something to do; the time it is "as of" and a gentle refresh
(no script); small plots of the last hour drawn here as inline SVG from `history.History`.
"""

from __future__ import annotations

import html
import socket
import time
from collections.abc import Callable, Iterable, Sequence

from mongooseim_agent import __version__, runbooks
from mongooseim_agent.drain import DrainState
from mongooseim_agent.history import History, Point
from mongooseim_agent.loadbalancer.readiness import Verdict
from mongooseim_agent.snapshot import Check, Snapshot, Status
from mongooseim_agent.store import Store

REFRESH_SECONDS = 15
_RANK = {Status.CRITICAL: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.OK: 3}
_CLASS = {Status.OK: "ok", Status.WARNING: "warning", Status.CRITICAL: "critical",
          Status.UNKNOWN: "unknown"}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em 2em;color:#1f2328;background:#fff}
h1{font-size:1.5em;margin:.2em 0}
.sub{color:#57606a;margin:0 0 1em}
.banner{padding:.7em 1em;border-radius:6px;font-size:1.15em;margin:.6em 0;color:#fff}
.banner.ok{background:#1a7f37}.banner.warning{background:#9a6700}
.banner.critical{background:#cf222e}.banner.unknown{background:#6e7781}
.drain{padding:.6em 1em;border-radius:6px;margin:.6em 0;background:#8250df;color:#fff}
.drain code{background:rgba(255,255,255,.2);padding:0 .3em;border-radius:3px}
.lb{margin:.4em 0 1em}
table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
tr.ok td.state{background:#dafbe1}tr.warning td.state{background:#fff8c5}
tr.critical td.state{background:#ffebe9;font-weight:bold}tr.unknown td.state{background:#eaeef2}
tr.critical{background:#fff5f5}tr.warning{background:#fffdf0}
.plots{display:flex;flex-wrap:wrap;gap:1.5em;margin-bottom:1.5em}
figure{margin:0}figcaption{font-size:.85em;color:#57606a;max-width:320px}
svg{background:#f6f8fa;border:1px solid #d0d7de}
.muted{color:#57606a;font-size:.9em}
"""


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _stamp(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def ordered(checks: Iterable[Check]) -> list[Check]:
    """Problems first (critical, warning, unknown), then OK; by name within a state."""
    return sorted(checks, key=lambda c: (_RANK[c.status], c.name))


def worst(checks: Sequence[Check], snapshots: Sequence[Snapshot]) -> Status:
    statuses = {c.status for c in checks}
    if any(not s.ok for s in snapshots):
        statuses.add(Status.UNKNOWN)
    return min(statuses, key=_RANK.__getitem__, default=Status.UNKNOWN)


def node_name(store: Store) -> str | None:
    for snap in store:
        for sample in snap.samples:
            if sample.metric == "mongooseim_node_info":
                return sample.labels.get("erlang_node")
    return None


# --- plots -----------------------------------------------------------------------------

_W, _H, _PAD = 320, 90, 4


def _x(at: float, now: float, window: float) -> float:
    return _PAD + (at - (now - window)) / window * (_W - 2 * _PAD)


def _y(value: float, top: float) -> float:
    return _H - _PAD - (value / top) * (_H - 2 * _PAD) if top > 0 else _H - _PAD


def _polyline(points: Sequence[tuple[float, float]], top: float, now: float, window: float,
              css: str) -> str:
    coords = " ".join(f"{_x(t, now, window):.1f},{_y(v, top):.1f}" for t, v in points)
    return f'<polyline fill="none" {css} points="{coords}"/>'


def _frame(label: str, body: str, caption: str, top: float) -> str:
    esc = html.escape
    return (
        f'<figure><svg role="img" aria-label="{esc(label)}" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{_PAD + 2}" y="12" font-size="10" fill="#57606a">{esc(_num(top))}</text>'
        f'<text x="{_PAD + 2}" y="{_H - 6}" font-size="10" fill="#57606a">-60 min</text>'
        f'<text x="{_W - 30}" y="{_H - 6}" font-size="10" fill="#57606a">now</text>'
        f"{body}</svg><figcaption><b>{esc(label)}</b>: {esc(caption)}</figcaption></figure>"
    )


def _num(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() or value >= 100 else f"{value:.2f}"


def use_plot(label: str, used: Sequence[tuple[float, float]],
             limit: Sequence[tuple[float, float]], *, now: float, window: float,
             unit: str) -> str:
    """Use against its limit: the limit dashed red, or named off scale when far above."""
    if not used:
        return _frame(label, "", "no data yet (a point every 10 s)", 1)
    peak = max(v for _, v in used)
    cap = max((v for _, v in limit), default=0.0)
    off_scale = cap > 0 and peak < cap / 10
    top = max(peak * 1.25, 1.0) if off_scale or cap <= 0 else cap * 1.05
    body = _polyline(used, top, now, window, 'stroke="#0969da" stroke-width="2"')
    if limit and not off_scale:
        body += _polyline(limit, top, now, window,
                          'stroke="#cf222e" stroke-width="1.5" stroke-dasharray="4 3"')
    last = used[-1][1]
    if cap > 0:
        share = f"{last / cap:.1%}"
        where = "limit off scale, far above" if off_scale else "limit dashed red"
        caption = f"now {_num(last)} of {_num(cap)} {unit} ({share}); {where}"
    else:
        caption = f"now {_num(last)} {unit}; no limit known"
    return _frame(label, body, caption, top)


def bar_plot(label: str, increments: Sequence[tuple[float, float]], now: float,
             window: float) -> str:
    total = sum(v for _, v in increments)
    if not increments:
        return _frame(label, "", "no data yet (a point every 10 s)", 1)
    top = max(*(v for _, v in increments), 1.0)
    bars = []
    for at, v in increments:
        if v <= 0:
            continue
        x, y = _x(at, now, window), _y(v, top)
        bars.append(f'<rect x="{x - 2:.1f}" y="{y:.1f}" width="4" '
                    f'height="{_H - _PAD - y:.1f}" fill="#cf222e"/>')
    caption = (f"{_num(total)} matching lines in the last hour" if total
               else "no matching lines in the last hour")
    return _frame(label, "".join(bars), caption, top)


def plots(history: History, now: float, live: Point | None = None) -> str:
    window = history.window

    def series(name: str) -> list[tuple[float, float]]:
        return history.series(name, now, live)

    return (
        '<section class="plots" id="plots">'
        + use_plot("open fds vs soft limit", series("open_fds"), series("max_fds"),
                   now=now, window=window, unit="fds")
        + bar_plot("log matches", history.increments("log_matches", now, live), now, window)
        + use_plot("port table", series("ports"), series("port_limit"), now=now,
                   window=window, unit="ports")
        + "</section>"
    )


# --- page ------------------------------------------------------------------------------

def _drain_block(drain: DrainState | None, now: float) -> str:
    if drain is None:
        return ""
    esc = html.escape
    return (
        f'<div class="drain" id="drain">DRAINED {esc(_age(now - drain.since))} ago by '
        f"<b>{esc(drain.by)}</b>: {esc(drain.reason)} "
        f'<span class="muted" style="color:#eee">(since {esc(_stamp(drain.since))})</span>'
        " &middot; <code>mongooseim-agent undrain</code> puts it back</div>"
    )


def _check_rows(checks: list[Check]) -> tuple[str, bool]:
    esc = html.escape
    any_hint = any(c.status is not Status.OK and (c.hint or runbooks.section(c.name))
                   for c in checks)
    rows = []
    for check in checks:
        cls = _CLASS[check.status]
        hint = esc(check.hint) if check.status is not Status.OK else ""
        alert = runbooks.section(check.name) if check.status is not Status.OK else None
        if alert is not None:
            hint += (f' <span class="muted">runbook: {esc(alert)} '
                     f"({esc(runbooks.reference(check.name) or '')})</span>")
        rows.append(
            f'<tr class="{cls}" data-check="{esc(check.name)}"><td>{esc(check.name)}</td>'
            f'<td class="state">{check.status.name}</td><td>{esc(check.summary)}</td>'
            + (f"<td>{hint}</td>" if any_hint else "") + "</tr>"
        )
    return "".join(rows), any_hint


def render(store: Store, verdict: Verdict, history: History, *, now: float, host: str,
           node: str | None) -> str:
    esc = html.escape
    snapshots = list(store)
    checks = ordered(store.checks())
    state = worst(checks, snapshots)
    counts = {s: sum(1 for c in checks if c.status is s) for s in _RANK}
    broken = [s for s in snapshots if not s.ok]
    node_text = node or "node not found"
    count_text = ", ".join(f"{counts[s]} {s.name.lower()}" for s in _RANK if counts[s])
    if broken:
        count_text += f"; {len(broken)} collector{'s' if len(broken) > 1 else ''} failing"
    lb = ("ready: /node/ready answers 200" if verdict.ready
          else "NOT READY: /node/ready answers 503 (" + "; ".join(verdict.reasons) + ")")
    rows, any_hint = _check_rows(checks)
    collectors = "".join(
        f'<tr class="{"ok" if s.ok else "critical"}"><td>{esc(s.collector)}</td>'
        f'<td class="state">{"ok" if s.ok else "failed"}</td>'
        f"<td>{esc(_age(now - s.timestamp) + ' ago' if s.timestamp else 'never')}</td>"
        f"<td>{s.duration_seconds * 1000:.1f} ms</td><td>{esc(s.error or '')}</td></tr>"
        for s in sorted(snapshots, key=lambda s: (s.ok, s.collector))
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{state.name} · {esc(node_text)} on {esc(host)} · mongooseim-agent</title>"
        f"<style>{_STYLE}</style></head><body>"
        f'<h1 id="heading">{esc(node_text)} on {esc(host)}</h1>'
        f'<p class="sub">mongooseim-agent {esc(__version__)} &middot; '
        f'<span id="asof">as of {esc(_stamp(now))}</span> &middot; refreshes every '
        f"{REFRESH_SECONDS} s</p>"
        f'<div class="banner {_CLASS[state]}" id="banner"><b>{state.name}</b> &middot; '
        f"{esc(count_text)}</div>"
        + _drain_block(verdict.drain, now)
        + f'<p class="lb" id="lb">Load balancer: {esc(lb)}</p>'
        '<h2>Checks</h2><table id="checks"><tr><th>check</th><th>state</th><th>value</th>'
        + ("<th>what to do</th>" if any_hint else "") + f"</tr>{rows}</table>"
        "<h2>Last hour</h2>"
        + plots(history, now, history.point((x for snap in snapshots for x in snap.samples), now))
        + '<h2>Collectors</h2><table id="collectors"><tr><th>collector</th><th>last run</th>'
        f"<th>when</th><th>took</th><th>error</th></tr>{collectors}</table>"
        '<p class="muted"><a href="/metrics">/metrics</a> &middot; '
        '<a href="/node/ready">/node/ready</a> &middot; <a href="/-/healthy">/-/healthy</a> '
        '&middot; <a href="/-/ready">/-/ready</a></p></body></html>'
    )


class LandingPage:
    """What http.py serves on `/`; everything it shows is already in memory."""

    def __init__(
        self,
        store: Store,
        readiness: Callable[[], Verdict],
        history: History | None = None,
        *,
        configured_node: Callable[[], str | None] = lambda: None,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._readiness = readiness
        self.history = history if history is not None else History()
        self._configured_node = configured_node
        self._host = host or socket.gethostname()
        self._clock = clock

    def render(self) -> str:
        node = node_name(self._store) or self._configured_node()
        return render(self._store, self._readiness(), self.history, now=self._clock(),
                      host=self._host, node=node)
