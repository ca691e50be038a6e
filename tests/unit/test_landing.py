"""The landing page rendering and its one-hour history, on fixed data and a fake clock."""

from __future__ import annotations

from mongooseim_agent.drain import DrainState
from mongooseim_agent.history import History
from mongooseim_agent.landing import render
from mongooseim_agent.loadbalancer.readiness import Condition, Verdict
from mongooseim_agent.snapshot import Check, Sample, Snapshot, Status
from mongooseim_agent.store import Store
from tests.support.browser import PageDom

NOW = 1_790_000_000.0


def _store() -> Store:
    store = Store()
    store.put(Snapshot("fds", samples=(
        Sample("mongooseim_node_info", 1, {"erlang_node": "mongooseim@db1"}),
        Sample("mongooseim_process_open_fds", 900), Sample("mongooseim_process_max_fds", 1024),
    ), checks=(
        Check("node_fds", Status.CRITICAL, "900 of 1024", hint="raise LimitNOFILE"),
        Check("host_fds", Status.OK, "fine", hint="raise fs.file-max"),
    ), timestamp=NOW))
    store.put(Snapshot("vm", checks=(
        Check("vm_port_table", Status.WARNING, "<script>alert(1)</script>", hint="more ports"),
        Check("epmd", Status.OK, "4 nodes"),
    ), timestamp=NOW))
    return store


def test_problems_come_first_with_hints_only_where_there_is_something_to_do() -> None:
    """Critical, then warning, then OK; an OK check's hint is not shown; text is escaped."""
    page = render(_store(), Verdict(True), History(clock=lambda: NOW), now=NOW, host="db1",
                  node="mongooseim@db1")
    dom = PageDom(page)
    assert [name for name, _ in dom.rows] == ["node_fds", "vm_port_table", "epmd", "host_fds"]
    assert "raise LimitNOFILE" in page and "raise fs.file-max" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert dom.banner_class == "banner critical"
    assert dom.banner.startswith("CRITICAL") and "1 critical, 1 warning, 2 ok" in dom.banner
    assert dom.heading == "mongooseim@db1 on db1" and "mongooseim@db1 on db1" in dom.title
    assert "as of 2026-09-21" in page and 'http-equiv="refresh"' in page


def test_drain_shows_reason_who_and_age() -> None:
    """A drained node: a coloured block with the reason, by whom and how long ago."""
    drain = DrainState("kernel upgrade <b>", NOW - 600, "alice")
    verdict = Verdict(False, (Condition("drained", False, drain.condition(), "drained"),),
                      drained=True, drain=drain)
    dom = PageDom(render(_store(), verdict, History(clock=lambda: NOW), now=NOW, host="db1",
                         node=None))
    assert dom.drain.startswith("DRAINED 10 min ago by alice: kernel upgrade <b>")
    assert dom.heading == "node not found on db1"


def test_history_keeps_one_hour_and_counts_increments_across_a_reset() -> None:
    """The ring is bounded; a counter that restarts from 0 counts its new value."""
    clock = [NOW]
    history = History(window=3600, interval=10, clock=lambda: clock[0])
    for i in range(1000):
        clock[0] = NOW + i * 10
        total = i if i < 500 else i - 500
        history.record([Sample("mongooseim_log_matches_total", total, {"pattern": "emfile"}),
                        Sample("mongooseim_log_matches_total", 0, {"pattern": "enfile"})])
    assert len(history) <= 362
    points = history.series("log_matches")
    assert points[0][0] >= clock[0] - 3600 and points[-1] == (clock[0], 499)
    assert all(v == 1 for _, v in history.increments("log_matches"))


def test_plots_draw_use_against_the_limit() -> None:
    """fd use near its limit is drawn with the limit line; the caption says the share."""
    history = History(clock=lambda: NOW)
    for i in range(5):
        history.record([Sample("mongooseim_process_open_fds", 800 + i * 40),
                        Sample("mongooseim_process_max_fds", 1024)], at=NOW - 40 + i * 10)
    page = render(Store(), Verdict(True), history, now=NOW, host="h", node="n@h")
    assert "now 960 of 1024 fds (93.8%); limit dashed red" in page
    assert page.count("<polyline") == 2
