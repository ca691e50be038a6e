"""Every way talking to epmd or a node can fail, as distinct types a collector can map to states.

Messages name the address or node and the phase; they never carry the cookie (nothing that
raises these has it in a printable form).
"""

from __future__ import annotations


class WireError(Exception):
    """Base of every epmd and distribution failure."""


class EpmdError(WireError):
    """Base of every epmd failure."""


class EpmdUnreachable(EpmdError):
    """Nothing accepted the connection (epmd not running, port closed, host unreachable)."""


class EpmdTimeout(EpmdError):
    """epmd (or whatever listens there) did not complete its reply in time."""


class EpmdProtocolError(EpmdError):
    """The reply is not what epmd sends: garbage, cut short, or with trailing bytes."""


class NodeNotRegistered(EpmdError):
    """epmd answered, and no node of that name is registered with it (the node is down)."""


class DistError(WireError):
    """Base of every failure on the distribution port."""


class DistUnreachable(DistError):
    """The distribution port refused or dropped the TCP connection."""


class DistTimeout(DistError):
    """Connecting, the handshake, or a call did not finish in time."""


class HandshakeFailed(DistError):
    """The peer closed or broke protocol during the handshake, or refused us for a reason
    other than the cookie (not allowed, too old, a different node on that port)."""


class NameInUse(HandshakeFailed):
    """Every client name of the pool is connected to that node already."""


class CookieRejected(HandshakeFailed):
    """The cookie does not match: the peer refused our digest, or its digest was wrong."""


class ConnectionLost(DistError):
    """An established connection closed, stopped ticking, or sent a malformed frame."""


class RpcError(DistError):
    """The call ran and failed on the node: `{badrpc, Reason}` or an unexpected reply shape."""
