"""The audit's verdicts for the live outcomes, from facts given directly."""

from __future__ import annotations

import json

from mongooseim_agent.collectors.audit import samples
from mongooseim_agent.commands.audit import exit_code, render, to_json
from mongooseim_agent.mongooseim.audit import checks
from mongooseim_agent.mongooseim.audit.checks import (
    ClusterFacts,
    CookieFacts,
    DistFacts,
    EpmdFacts,
    KernelFacts,
    NameFacts,
    NofileSource,
    PamStatus,
    PortMemory,
    PortsFacts,
    Resolution,
)
from mongooseim_agent.mongooseim.audit.findings import Finding, Targets, Verdict
from mongooseim_agent.mongooseim.audit.limits import LimitRule, Resolved
from mongooseim_agent.mongooseim.audit.sockets import Listener
from mongooseim_agent.mongooseim.audit.systemd import RLimit

GUIDE = Targets()
UNIT = NofileSource("mongooseim", True, "mongooseim.service",
                    unit_limit=RLimit(1000000, 1000000), unit_limit_where="/etc/x.conf:2")
RULE = LimitRule("mongooseim", "-", "nofile", 1000000, "/etc/security/limits.conf", 9)
PAM_OK = PamStatus("Debian/Ubuntu", {"/etc/pam.d/common-session": "/etc/pam.d/common-session:8"})
OUTSIDE = NofileSource("mongooseim", False, None, limits=Resolved(RULE, RULE), pam=PAM_OK)


def _nofile(running: tuple[int | None, int | None] | None, targets: Targets = GUIDE,
            source: NofileSource = UNIT) -> Finding:
    return checks.check_nofile(running, live=True,
                               absent_reason="the node is not running here (not found)",
                               targets=targets, source=source)


def test_nofile_pass_warn_fail_by_size() -> None:
    """At the guide's 1,000,000 pass; below it warn; below 100k connections fail."""
    assert _nofile((1000000, 1000000)).status is Verdict.PASS
    assert _nofile((None, None)).status is Verdict.PASS
    assert _nofile((500000, 500000)).status is Verdict.WARN
    low = _nofile((4096, 4096))
    assert low.status is Verdict.FAIL and low.observed_value == 4096
    assert "LimitNOFILE=1000000" in low.fix and "systemctl restart mongooseim.service" in low.fix


def test_nofile_scaled_by_expected_connections_and_fix_for_limits_conf() -> None:
    """10000 expected connections want 23000: 4096 fails, 20000 warns, 25000 passes; outside
    systemd the fix is limits.d, naming the line it replaces."""
    small = Targets(expected_connections=10000)
    assert _nofile((4096, 4096), small, OUTSIDE).status is Verdict.FAIL
    assert _nofile((25000, 25000), small, OUTSIDE).status is Verdict.PASS
    assert _nofile((20000, 20000), small, OUTSIDE).status is Verdict.WARN
    fix = _nofile((4096, 4096), small, OUTSIDE).fix
    assert "mongooseim soft nofile 23000" in fix
    assert "replacing /etc/security/limits.conf:9" in fix


def test_nofile_skips_with_reason() -> None:
    """No node or an image: skipped, saying why."""
    assert "not running here (not found)" in _nofile(None).observed
    image = checks.check_nofile(None, live=False, absent_reason=None, targets=GUIDE, source=UNIT)
    assert image.status is Verdict.SKIP and "--root" in image.observed


def _source(source: NofileSource, running: tuple[int | None, int | None] | None) -> Finding:
    return checks.check_nofile_source(source, running, live=True, targets=GUIDE, nr_open=1 << 20)


def test_nofile_source_systemd_running_matches_or_drifts() -> None:
    """The unit's LimitNOFILE= equal to the running limit passes; different: a restart will
    change it, so it warns."""
    assert _source(UNIT, (1000000, 1000000)).status is Verdict.PASS
    drift = _source(UNIT, (4096, 4096))
    assert drift.status is Verdict.WARN and "a restart will change it" in drift.observed


def test_nofile_source_outside_systemd() -> None:
    """limits.conf + pam_limits, running as configured: pass; running otherwise: warn;
    nothing configured: warn that a restart may get 1024."""
    assert _source(OUTSIDE, (1000000, 1000000)).status is Verdict.PASS
    assert _source(OUTSIDE, (20000, 20000)).status is Verdict.WARN
    bare = NofileSource("mongooseim", False, None)
    finding = _source(bare, (20000, 20000))
    assert finding.status is Verdict.WARN and "may get 1024" in finding.observed


def test_erl_max_ports_names_what_caps_first_and_the_memory_cost() -> None:
    """nofile below ports: fds run out first; the measured cost shown in MiB."""
    facts = PortsFacts(250000, "environ", 262144, 20000, "the running node", True,
                       PortMemory(250000, 13 * 2**20, 1024, 10 * 2**20))
    finding = checks.check_erl_max_ports(facts, Targets(tls=False))
    assert finding.status is Verdict.PASS
    assert "nofile (20000, the running node) caps connections first" in finding.observed
    assert "live port_limit 262144" in finding.observed
    assert "costs 3.0 MiB" in finding.observed
    unset = checks.check_erl_max_ports(
        PortsFacts(None, None, None, 1000000, "x", True), Targets(tls=True))
    assert unset.status is Verdict.FAIL and "the VM's default 65536" in unset.observed
    assert "the port table (65536) caps connections before nofile" in unset.observed
    assert "ERL_MAX_PORTS 350000" in unset.fix
    assert checks.check_erl_max_ports(PortsFacts(None, None, None, None, None, False),
                                      GUIDE).status is Verdict.SKIP


def test_node_name_resolution() -> None:
    """Unresolvable own host or peer fails; loopback-only with peers warns."""
    ok = Resolution(("10.0.0.1",))
    loop = Resolution(("127.0.1.1",))
    bad = Resolution((), "Name or service not known")
    assert checks.check_node_name(NameFacts("m@h", "argv", ok)).status is Verdict.PASS
    assert checks.check_node_name(NameFacts("m@h", "argv", bad)).status is Verdict.FAIL
    assert checks.check_node_name(NameFacts("m@h", "argv", loop)).status is Verdict.PASS
    warn = checks.check_node_name(NameFacts("m@h", "argv", loop, {"p@q": ok}))
    assert warn.status is Verdict.WARN and "loopback only" in warn.observed
    peer = checks.check_node_name(NameFacts("m@h", "argv", ok, {"p@q": bad}))
    assert peer.status is Verdict.FAIL and "p@q (Name or service not known)" in peer.observed


def test_dist_port_range_live() -> None:
    """Port outside the range fails; range narrower than the cluster warns."""
    outside = checks.check_dist_port_range(DistFacts((9100, 9105), "argv", 40000, 3, True))
    assert outside.status is Verdict.FAIL and "OUTSIDE" in outside.observed
    narrow = checks.check_dist_port_range(DistFacts((9100, 9101), "argv", 9100, 3, True))
    assert narrow.status is Verdict.WARN and narrow.recommended_value == 3
    assert checks.check_dist_port_range(DistFacts((9100, 9110), "argv", 9100, 3, True)).status \
        is Verdict.PASS


def _epmd(error: str | None = None, registered: bool | None = True,
          listeners: list[Listener] | None = None,
          port_range: tuple[int, int] | None = None) -> Finding:
    return checks.check_epmd(EpmdFacts(True, "127.0.0.1:4369", error, registered, listeners,
                                       4369, 40000, port_range))


def test_epmd_outcomes() -> None:
    """Not answering fails; node not registered fails; all interfaces without a range warns,
    with a range or on loopback passes; an image skips."""
    assert _epmd("connection refused").status is Verdict.FAIL
    assert _epmd(registered=False).status is Verdict.FAIL
    wide = [Listener("0.0.0.0", 4369), Listener("::", 40000)]
    exposed = _epmd(listeners=wide)
    assert exposed.status is Verdict.WARN
    assert "epmd (4369) and the distribution port (40000) listen on all" in exposed.observed
    assert _epmd(listeners=wide, port_range=(40000, 40000)).status is Verdict.PASS
    assert _epmd(listeners=[Listener("127.0.0.1", 4369)]).status is Verdict.PASS
    image = checks.check_epmd(EpmdFacts(False, "", None, None, None, 4369, None, None))
    assert image.status is Verdict.SKIP


def test_cookie_peers() -> None:
    """A peer rejecting our handshake fails, naming it; unchecked peers are listed."""
    facts = CookieFacts("-setcookie (command line)", False, rejected_by=("b@h",),
                        accepted_by=("c@h",), unchecked={"d@h": "timed out"}, peers_checked=True)
    finding = checks.check_cookie(facts)
    assert finding.status is Verdict.FAIL
    assert "rejected by peers (the handshake failed): b@h" in finding.observed
    assert "accepted by 1 peers" in finding.observed and "d@h (timed out)" in finding.observed
    assert checks.check_cookie(CookieFacts(None, None)).status is Verdict.FAIL
    unknown = checks.check_cookie(CookieFacts("/x/.erlang.cookie", None, "Permission denied"))
    assert unknown.status is Verdict.WARN


def test_kernel_file_max_below_running_limit_fails() -> None:
    """file-max under a limit in force: fail; under the recommendation only: warn."""
    facts = KernelFacts((500000, "f"), (1048576, "n"), ((32768, 60999), "r"),
                        [(800000, "running")], None)
    assert checks.check_kernel_limits(facts, GUIDE).status is Verdict.FAIL
    facts = KernelFacts((900000, "f"), (1048576, "n"), ((32768, 60999), "r"), [], None)
    assert checks.check_kernel_limits(facts, GUIDE).status is Verdict.WARN


def test_cluster_outcomes() -> None:
    """Skip with the reason; a stopped db node or a missing expected member fails."""
    assert checks.check_cluster(None, "why not").observed == "skipped: why not"
    healthy = ClusterFacts(("a@h", "b@h"), (), (), "dist")
    assert checks.check_cluster(healthy, "").status is Verdict.PASS
    stopped = checks.check_cluster(ClusterFacts(("a@h", "b@h"), ("b@h",), (), "dist"), "")
    assert stopped.status is Verdict.FAIL and stopped.observed_value == 1
    missing = checks.check_cluster(ClusterFacts(("a@h",), (), ("c@h",), "dist"), "")
    assert missing.status is Verdict.FAIL and "c@h" in missing.observed


FINDINGS = [
    Finding("nofile", Verdict.FAIL, "soft 1024", "1000000", "why", "fix it", 1024, 1e6),
    Finding("epmd", Verdict.WARN, "wide", "narrow", "why", "bind it"),
    Finding("cookie", Verdict.PASS, "random", "random", "why"),
    Finding("cluster", Verdict.SKIP, "skipped: no", "", "why"),
]


def test_report_json_and_exit_codes() -> None:
    """JSON has status and the named fields per check; exit codes follow Nagios."""
    report = json.loads(to_json(FINDINGS, None))
    assert report["status"] == "fail" and report["exit_code"] == 2
    assert report["checks"][0] == {"name": "nofile", "status": "fail", "observed": "soft 1024",
                                   "recommended": "1000000", "why": "why", "fix": "fix it"}
    assert exit_code(FINDINGS) == 2
    assert exit_code(FINDINGS[1:]) == 1
    assert exit_code(FINDINGS[2:]) == 0


def test_report_colour_only_on_request() -> None:
    """ANSI colours for a terminal; plain text otherwise; passing checks show no fix."""
    plain = render(FINDINGS, None, colour=False)
    assert "\x1b[" not in plain
    assert plain.splitlines()[0] == "MONGOOSEIM AUDIT CRITICAL - this host: nofile, epmd"
    assert "fix:         fix it" in plain and "1 pass, 1 warn, 1 fail, 1 skip" in plain
    assert "\x1b[31mFAIL\x1b[0m  nofile" in render(FINDINGS, None, colour=True)


def test_samples_per_status() -> None:
    """ok 1/0 and the figures for checks that ran; only the status one-hot for a skip."""
    found = {(s.metric, tuple(sorted(s.labels.items()))): s.value for s in samples(FINDINGS)}
    assert found[("mongooseim_config_check_ok", (("check", "nofile"),))] == 0
    assert found[("mongooseim_config_check_ok", (("check", "cookie"),))] == 1
    assert found[("mongooseim_config_check_observed", (("check", "nofile"),))] == 1024
    assert found[("mongooseim_config_check_recommended", (("check", "nofile"),))] == 1e6
    assert ("mongooseim_config_check_ok", (("check", "cluster"),)) not in found
    assert found[("mongooseim_config_check_status", (("check", "cluster"),
                                                       ("status", "skip")))] == 1
    assert found[("mongooseim_config_check_status", (("check", "cluster"),
                                                       ("status", "pass")))] == 0


def test_cluster_facts_from_the_cluster_collectors_snapshot() -> None:
    """Stopped db nodes while mnesia counts some; expected members missing otherwise; no
    source or a broken collector is a reason to skip."""
    from mongooseim_agent.collectors.audit import cluster_from_snapshot
    from mongooseim_agent.snapshot import Check, Sample, Snapshot, Status

    def running(member: str, value: float) -> Sample:
        return Sample("mongooseim_cluster_node_running", value, {"member": member})

    def expected(member: str, value: float) -> Sample:
        return Sample("mongooseim_cluster_expected_node_present", value, {"member": member})

    source = Sample("mongooseim_cluster_source_info", 1, {"source": "dist"})
    stopped = Snapshot("cluster", (source, Sample("mongooseim_cluster_stopped_nodes", 1),
                                   running("a@h", 1), running("b@h", 0), expected("a@h", 1),
                                   expected("b@h", 0)))
    facts, _ = cluster_from_snapshot(stopped)
    assert facts == ClusterFacts(("a@h", "b@h"), ("b@h",), (),
                                 "the cluster collector, through dist")
    missing = Snapshot("cluster", (source, Sample("mongooseim_cluster_stopped_nodes", 0),
                                   running("a@h", 1), running("c@h", 0), expected("c@h", 0)))
    facts, _ = cluster_from_snapshot(missing)
    assert facts is not None and facts.stopped == () and facts.expected_missing == ("c@h",)
    unread = Snapshot("cluster", checks=(Check("cluster_source", Status.CRITICAL,
                                               "no source answered: dist: nodedown"),))
    assert cluster_from_snapshot(unread) == (
        None, "cluster membership not read: no source answered: dist: nodedown")
    broken = Snapshot("cluster", error="TimeoutError")
    assert cluster_from_snapshot(broken)[1] == "the cluster collector failed: TimeoutError"
