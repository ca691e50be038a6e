"""The agent's secret type; it lives in `erlang/` because the handshake (the one place that
reveals a cookie) may import nothing of the agent."""

from __future__ import annotations

from mongooseim_agent.erlang.secret import Secret

__all__ = ["Secret"]
