"""The shipped Alertmanager routing: amtool accepts it, severities reach the right receiver,
and a real Alertmanager applies each inhibition to the alerts it should and no others."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.alerting import Alertmanager, WebhookSink, alertmanager_config, wait_for
from tests.support.exporters import ALERTMANAGER, load_yaml
from tests.support.require import require_binary

pytestmark = pytest.mark.integration


def test_amtool_check_config_is_clean() -> None:
    """amtool accepts the shipped file as it is."""
    amtool = require_binary("amtool")
    done = subprocess.run([amtool, "check-config", str(ALERTMANAGER)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=MongooseIMEmfileErrors"], "pager"),
        (["severity=warning", "alertname=MongooseIMEpmdDown"], "ticket"),
        (["severity=info", "alertname=MongooseIMAnything"], "blackhole"),
        (["alertname=SomethingElse"], "ticket"),
    ],
)
def test_severity_picks_the_receiver(labels: list[str], receiver: str) -> None:
    """critical pages, warning tickets, info goes nowhere; unlabelled falls back to a ticket."""
    amtool = require_binary("amtool")
    done = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.stdout.strip() == receiver, done.stdout + done.stderr


def test_groups_by_cluster_and_alertname() -> None:
    """One incident across many nodes of a cluster is one notification."""
    route = load_yaml(ALERTMANAGER)["route"]
    assert route["group_by"] == ["cluster", "alertname"]
    assert all("group_by" not in child for child in route["routes"])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    binary = require_binary("prometheus-alertmanager")
    sink = WebhookSink()
    manager = Alertmanager(binary, alertmanager_config(sink), tmp_path / "am")
    try:
        yield manager
    finally:
        manager.stop()
        sink.close()


def _alert(alertname: str, severity: str = "warning", **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": alertname, "severity": severity, **labels},
            "annotations": {"summary": alertname}}


def _inhibited(manager: Alertmanager, alert: dict[str, Any]) -> bool:
    labels = alert["labels"]
    [found] = manager.alerts(**labels)
    return bool(found["status"]["inhibitedBy"])


CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]] = [
    (
        "node down silences that node's fd, listener and emfile alerts",
        _alert("MongooseIMNodeDown", "critical", cluster="prod", instance="a:9925"),
        [
            _alert("MongooseIMEmfileErrors", "critical", cluster="prod", instance="a:9925",
                   pattern="emfile"),
            _alert("MongooseIMFileDescriptorsNearLimit", "critical", cluster="prod",
                   instance="a:9925"),
            _alert("MongooseIMListenerDown", "critical", cluster="prod", instance="a:9925",
                   name="c2s"),
            _alert("MongooseIMNodeNotReady", cluster="prod", instance="a:9925"),
        ],
        [
            _alert("MongooseIMEmfileErrors", "critical", cluster="prod", instance="b:9925",
                   pattern="emfile"),
            _alert("MongooseIMClusterPartitioned", "critical", cluster="prod"),
        ],
    ),
    (
        "agent down silences everything from that agent",
        _alert("MongooseIMAgentDown", "critical", cluster="prod", instance="a:9925"),
        [
            _alert("MongooseIMNodeDown", "critical", cluster="prod", instance="a:9925"),
            _alert("MongooseIMCETSUnavailableNodes", "critical", cluster="prod",
                   instance="a:9925"),
            _alert("MongooseIMEpmdDown", cluster="prod", instance="a:9925"),
        ],
        [
            _alert("MongooseIMNodeDown", "critical", cluster="prod", instance="b:9925"),
            _alert("MongooseIMEpmdDown", cluster="stage", instance="a:9925"),
        ],
    ),
    (
        "a partition silences the per-peer unreachable alerts of its cluster",
        _alert("MongooseIMClusterPartitioned", "critical", cluster="prod"),
        [
            _alert("MongooseIMClusterPeerUnreachable", cluster="prod", instance="a:9925",
                   peer="mongooseim@b"),
            _alert("MongooseIMClusterPeerUnreachable", cluster="prod", instance="b:9925",
                   peer="mongooseim@a"),
        ],
        [
            _alert("MongooseIMClusterPeerUnreachable", cluster="qa", instance="a:9925",
                   peer="mongooseim@b"),
            _alert("MongooseIMCookieMismatch", cluster="prod", instance="a:9925",
                   peer="mongooseim@b"),
        ],
    ),
    (
        "a stopped member silences the unreachable alerts about it",
        _alert("MongooseIMClusterNodeStopped", cluster="prod", member="mongooseim@c",
               peer="mongooseim@c"),
        [
            _alert("MongooseIMClusterPeerUnreachable", cluster="prod", instance="a:9925",
                   peer="mongooseim@c"),
        ],
        [
            _alert("MongooseIMClusterPeerUnreachable", cluster="prod", instance="a:9925",
                   peer="mongooseim@d"),
        ],
    ),
    (
        "a stopped member is not also reported missing",
        _alert("MongooseIMClusterNodeStopped", cluster="prod", member="mongooseim@c",
               peer="mongooseim@c"),
        [
            _alert("MongooseIMClusterMemberMissing", cluster="prod", member="mongooseim@c",
                   peer="mongooseim@c"),
        ],
        [
            _alert("MongooseIMClusterMemberMissing", cluster="prod", member="mongooseim@d",
                   peer="mongooseim@d"),
        ],
    ),
    (
        "the critical variant silences the warning variant of the same alert",
        _alert("MongooseIMPortTableNearLimit", "critical", cluster="prod", instance="a:9925"),
        [_alert("MongooseIMPortTableNearLimit", "warning", cluster="prod", instance="a:9925")],
        [
            _alert("MongooseIMPortTableNearLimit", "warning", cluster="prod", instance="b:9925"),
            _alert("MongooseIMNofileLimitBelowRecommendation", "warning", cluster="prod",
                   instance="a:9925"),
        ],
    ),
]


@pytest.mark.parametrize(("source", "muted", "spared"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_inhibition(alertmanager: Alertmanager, source: dict[str, Any],
                    muted: list[dict[str, Any]], spared: list[dict[str, Any]]) -> None:
    """With the source alert firing, exactly the alerts it explains are inhibited."""
    alertmanager.post_alerts([*muted, *spared])
    wait_for(lambda: len(alertmanager.alerts()) == len(muted) + len(spared), 10,
             "the target alerts to be received")
    assert not any(_inhibited(alertmanager, alert) for alert in muted + spared)
    alertmanager.post_alerts([source])
    wait_for(lambda: all(_inhibited(alertmanager, alert) for alert in muted), 15,
             "the explained alerts to be inhibited")
    for alert in spared:
        assert not _inhibited(alertmanager, alert), alert["labels"]
