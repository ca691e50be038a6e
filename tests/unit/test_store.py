"""The store's version moves only when what it renders changes, so scrape caches hold."""

from __future__ import annotations

import dataclasses

from mongooseim_agent.snapshot import Check, Perf, Sample, Snapshot, Status
from mongooseim_agent.store import Store


def _snap(value: float = 1.0, status: Status = Status.OK, error: str | None = None) -> Snapshot:
    return Snapshot(
        "logs", (Sample("m", value, {"pattern": "emfile"}),),
        (Check("log_watch", status, "ok", perfdata={"lines": value}),), error,
        duration_seconds=0.001, timestamp=1000.0,
    )


def test_equal_snapshots_do_not_bump_the_version() -> None:
    """Four unchanged runs a second: one bump for the first, none after, yet the latest
    snapshot (with its new time and duration) is what the store holds."""
    store = Store()
    store.put(_snap())
    first = store.version
    for i in range(4):
        later = dataclasses.replace(_snap(), duration_seconds=0.002 + i, timestamp=1001.0 + i)
        store.put(later)
        assert store.version == first
        assert store.get("logs") is later


def test_a_changed_sample_check_or_error_bumps_it() -> None:
    """Any difference in samples, checks or error moves the version once."""
    store = Store()
    store.put(_snap())
    for changed in (_snap(value=2.0), _snap(value=2.0, status=Status.WARNING),
                    _snap(value=2.0, status=Status.WARNING, error="boom")):
        before = store.version
        store.put(changed)
        assert store.version == before + 1


def test_insane_values_are_dropped_and_counted_not_kept() -> None:
    """A huge int, inf and NaN are dropped (and counted per collector); sane samples and
    perfdata stay; a collector's own refusals add to the same count."""
    store = Store()
    good = Sample("m", 5.0)
    store.put(Snapshot("vm", (good, Sample("a", 10**400), Sample("b", float("inf")),
                              Sample("c", float("nan"))),
                       (Check("t", Status.OK, "x", perfdata={
                           "ok": 1, "huge": 10**400, "perf": Perf(3, "c", warn=5),
                           "bad_perf": Perf(1, max=float("inf"))}),)))
    snap = store.get("vm")
    assert snap is not None
    assert snap.samples == (good,)
    assert dict(snap.checks[0].perfdata) == {"ok": 1, "perf": Perf(3, "c", warn=5)}
    assert store.dropped == {"vm": 3}
    store.put(Snapshot("vm", (good,), dropped=2))
    assert store.dropped == {"vm": 5}
