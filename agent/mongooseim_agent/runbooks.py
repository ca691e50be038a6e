"""Which section of docs/runbooks.md (one per shipped alert) to read when a check fails.

The alert and the check watch the same thing from two sides (Prometheus rules over the
metrics, the agent's own verdict); this names the alert's runbook for each check, so the
page at 3 a.m. and `check --json` point at the same text on-call gets paged with. A test
holds every anchor to a heading that docs/runbooks.md has.
"""

from __future__ import annotations

DOC = "docs/runbooks.md"

# check name (or a prefix ending in "_*") -> the alert whose runbook covers it.
SECTIONS: dict[str, str] = {
    "node_process": "MongooseIMNodeDown",
    "node_fds": "MongooseIMFileDescriptorsNearLimit",
    "host_fds": "MongooseIMEnfileErrors",
    "vm_port_table": "MongooseIMPortTableNearLimit",
    "vm_tables": "MongooseIMCookieMismatch",
    "epmd": "MongooseIMEpmdDown",
    "epmd_registration": "MongooseIMEpmdDown",
    "listener_*": "MongooseIMListenerDown",
    "listener_connections": "MongooseIMListenerDown",
    "cluster_peers": "MongooseIMClusterPeerUnreachable",
    "cluster_members": "MongooseIMClusterMemberMissing",
    "cluster_mnesia": "MongooseIMClusterNodeStopped",
    "cluster_partition": "MongooseIMClusterPartitioned",
    "cluster_cets": "MongooseIMCETSUnavailableNodes",
    "node_state": "MongooseIMNodeNotReady",
    "node_responsive": "MongooseIMNodeNotReady",
    "drain": "MongooseIMNodeNotReady",
    "log_emfile": "MongooseIMEmfileErrors",
    "log_enfile": "MongooseIMEnfileErrors",
    "log_system_limit": "MongooseIMPortTableNearLimit",
    "log_partition": "MongooseIMClusterPartitioned",
    "log_nodedown": "MongooseIMClusterPeerUnreachable",
    "log_cookie_rejected": "MongooseIMCookieMismatch",
    "log_eaddrinuse": "MongooseIMListenerDown",
    "log_watch": "MongooseIMLogLinesLost",
}


def section(check: str) -> str | None:
    """The alert name whose runbook section covers `check`, or None."""
    if check in SECTIONS:
        return SECTIONS[check]
    for key, alert in SECTIONS.items():
        if key.endswith("_*") and check.startswith(key[:-1]):
            return alert
    return None


def anchor(alert: str) -> str:
    """GitHub's anchor for a `## Alert` heading."""
    return alert.lower()


def reference(check: str) -> str | None:
    """The runbook section of a check as a path and anchor, or None."""
    alert = section(check)
    return None if alert is None else f"{DOC}#{anchor(alert)}"
