"""The load-balancer verdict: conditions named with their values, exemptions, stale and
stuck collectors failing closed."""

from __future__ import annotations

from mongooseim_agent.config import LoadBalancerSection
from mongooseim_agent.loadbalancer.readiness import ReadinessPolicy, Schedule
from mongooseim_agent.snapshot import Check, Snapshot, Status
from mongooseim_agent.store import Store

NOW = 1_000_000.0
SCHEDULES = {"fds": Schedule(5.0, 2.0), "cluster": Schedule(10.0, 5.0)}


def _fds(open_fds: int = 100, status: Status = Status.OK, at: float = NOW) -> Snapshot:
    return Snapshot(
        "fds",
        checks=(
            Check("node_process", Status.OK, "mim@h running as pid 42", affects_readiness=True),
            Check("node_fds", status, f"{open_fds} of 1024 fds open", affects_readiness=True),
            Check("host_fds", Status.CRITICAL, "host table full (not a readiness check)"),
        ),
        timestamp=at,
    )


def _cluster(running: int, at: float = NOW) -> Snapshot:
    status = Status.OK if running >= 2 else Status.CRITICAL
    return Snapshot(
        "cluster",
        checks=(
            Check("cluster_mnesia", Status.OK, "mnesia running", affects_readiness=True),
            Check("cluster_partition", Status.OK, "not partitioned", affects_readiness=True),
            Check("cluster_members", status, f"{running} of 3 members running",
                  affects_readiness=True),
        ),
        timestamp=at,
    )


def _store(*snaps: Snapshot) -> Store:
    store = Store()
    for snap in snaps:
        store.put(snap)
    return store


def _policy(**settings: object) -> ReadinessPolicy:
    return ReadinessPolicy(LoadBalancerSection.model_validate(settings))


def test_ready_lists_every_readiness_condition_with_its_value() -> None:
    """All checks fine: ready, and the body still names each condition and its value."""
    verdict = _policy().evaluate(_store(_fds(), _cluster(3)), SCHEDULES, NOW)
    assert verdict.ready and verdict.reasons == ()
    body = verdict.to_json()
    names = [c["name"] for c in body["conditions"]]  # type: ignore[union-attr, index]
    assert names == ["cluster_mnesia", "cluster_partition", "cluster_members",
                     "node_process", "node_fds"]
    values = {c["name"]: c["value"] for c in body["conditions"]}  # type: ignore[union-attr, index]
    assert values["cluster_members"] == "3 of 3 members running"
    assert values["node_fds"] == "100 of 1024 fds open"


def test_critical_cluster_check_and_drain_make_node_not_ready() -> None:
    """Too few members running is a named reason; the drain comes first."""
    verdict = _policy().evaluate(_store(_fds(), _cluster(1)), SCHEDULES, NOW, "drained: kernel")
    assert not verdict.ready and verdict.drained
    assert verdict.reasons == (
        "drained: drained: kernel",
        "cluster_members: 1 of 3 members running (critical)",
    )


def test_exempt_condition_is_shown_but_does_not_block() -> None:
    """[load_balancer] exempt keeps a failing check visible without taking the node out."""
    verdict = _policy(exempt=["cluster_members"]).evaluate(
        _store(_fds(), _cluster(1)), SCHEDULES, NOW
    )
    assert verdict.ready
    members = next(c for c in verdict.conditions if c.name == "cluster_members")
    assert (members.ok, members.exempt, members.reason) == (False, True, "critical")


def test_fail_on_warning_is_stricter() -> None:
    """fail_on = "warning" takes the node out at a warning too."""
    store = _store(_fds(850, Status.WARNING))
    assert _policy().evaluate(store, SCHEDULES, NOW).ready
    verdict = _policy(fail_on="warning").evaluate(store, SCHEDULES, NOW)
    assert verdict.reasons == ("node_fds: 850 of 1024 fds open (warning)",)


def test_unknown_check_is_shown_not_obeyed() -> None:
    """A check that cannot tell does not empty the pool."""
    snap = Snapshot("fds", checks=(
        Check("node_process", Status.OK, "up", affects_readiness=True),
        Check("cluster_mnesia", Status.UNKNOWN, "no cookie", affects_readiness=True),
    ), timestamp=NOW)
    verdict = _policy().evaluate(_store(snap), SCHEDULES, NOW)
    assert verdict.ready
    assert [c.reason for c in verdict.conditions] == ["", "unknown"]


def test_verdict_older_than_a_few_intervals_is_stale() -> None:
    """fds runs every 5 s with a 2 s timeout: at stale_after=3 its verdict lasts 17 s."""
    policy = _policy()
    fresh = policy.evaluate(_store(_fds(at=NOW - 16.9)), SCHEDULES, NOW)
    assert fresh.ready
    stale = policy.evaluate(_store(_fds(at=NOW - 17.1)), SCHEDULES, NOW)
    assert not stale.ready
    assert {c.name: c.reason for c in stale.blocking} == {
        "node_process": "stale", "node_fds": "stale"
    }
    assert "last ran 17.1s ago (limit 17s)" in stale.blocking[0].value


def test_failed_collector_keeps_its_conditions_failing() -> None:
    """A collector that errors stores no checks; its last readiness checks fail closed."""
    policy = _policy()
    store = _store(_fds(), _cluster(3))
    assert policy.evaluate(store, SCHEDULES, NOW).ready
    store.put(Snapshot("cluster", error="timed out after 5s", timestamp=NOW + 10))
    verdict = policy.evaluate(store, SCHEDULES, NOW + 10)
    assert not verdict.ready
    assert [(c.name, c.reason) for c in verdict.blocking] == [
        ("cluster_mnesia", "collector failed"),
        ("cluster_partition", "collector failed"),
        ("cluster_members", "collector failed"),
    ]
    assert verdict.blocking[0].value == (
        "collector cluster failed: timed out after 5s; last verdict: mnesia running"
    )
    store.put(_fds(at=NOW + 20))
    store.put(_cluster(3, at=NOW + 20))
    assert policy.evaluate(store, SCHEDULES, NOW + 20).ready


def test_collector_running_past_its_timeout_is_stuck() -> None:
    """A run that began long ago and never stored anything marks its checks stuck."""
    policy = _policy()
    store = _store(_fds(at=NOW))
    store.begin("fds", NOW + 1)
    assert policy.evaluate(store, SCHEDULES, NOW + 4.0).ready
    verdict = policy.evaluate(store, SCHEDULES, NOW + 5.0)
    assert [c.reason for c in verdict.blocking] == ["stuck", "stuck"]
    assert "stuck: running for 4.0s, timeout 2s" in verdict.blocking[0].value


def test_required_condition_missing_is_not_ready() -> None:
    """No node_process verdict at all (discovery never ran) is not a reason to serve."""
    verdict = _policy().evaluate(_store(_cluster(3)), SCHEDULES, NOW)
    assert verdict.reasons == ("node_process: no verdict yet (missing)",)


def test_store_names_collectors_overdue_past_their_timeout() -> None:
    """A run is overdue a second past its timeout, and no longer once it stores."""
    store = Store()
    store.begin("fds", NOW, 2.0)
    store.begin("logs", NOW)  # no timeout known: never overdue
    assert store.overdue(NOW + 3.0) == frozenset()
    assert store.overdue(NOW + 3.1) == {"fds"}
    store.put(_fds(at=NOW + 3.2))
    assert store.overdue(NOW + 10) == frozenset()
    assert store.running_since("fds") is None
