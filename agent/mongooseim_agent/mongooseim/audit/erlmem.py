"""What a port table costs, measured as the guide shows:
`env ERL_MAX_PORTS=N erl -noinput -eval 'io:format("~p~n",[erlang:memory(system)]).' -s erlang halt`

Starting a VM takes about a second, so results are cached in memory and, when a cache file
is given, on disk keyed by the erl binary (path, size, mtime) and N.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import structlog

from mongooseim_agent.mongooseim.audit.checks import PortMemory

BASELINE_PORTS = 1024
EVAL = 'io:format("~p~n",[erlang:memory(system)]).'
# Flags from the caller's environment would change what is measured.
_DROPPED_ENV = ("ERL_FLAGS", "ERL_AFLAGS", "ERL_ZFLAGS", "ERL_MAX_PORTS", "ERL_LIBS")

Runner = Callable[[list[str], Mapping[str, str], float], Awaitable[str]]


class MeasureFailed(Exception):
    """str() says what went wrong (erl missing, exited, printed no number)."""


async def run_erl(argv: list[str], env: Mapping[str, str], time_limit: float) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    # A measurement is background work: it must not slow the node or the other collectors.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, proc.pid, 19)
    try:
        async with asyncio.timeout(time_limit):
            out, _ = await proc.communicate()
    except TimeoutError:
        await _reap(proc)
        raise MeasureFailed(f"erl did not finish in {time_limit:g}s") from None
    except BaseException:
        # Cancelled (the agent stops or reloads): the VM must not outlive the measurement.
        await _reap(proc)
        raise
    if proc.returncode != 0:
        raise MeasureFailed(f"erl exited with status {proc.returncode}")
    return out.decode("utf-8", "replace")


async def _reap(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    await asyncio.shield(proc.wait())


def parse_memory(output: str) -> int:
    for line in reversed(output.strip().splitlines()):
        if line.strip().isdigit():
            return int(line.strip())
    raise MeasureFailed("erl printed no erlang:memory(system) figure")


class ErlPortMemory:
    def __init__(
        self,
        erl: str | None = None,
        cache_file: Path | None = None,
        run: Runner = run_erl,
        timeout: float = 20.0,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self.erl = erl if erl is not None else which("erl")
        self._cache_file = cache_file
        self._run = run
        self._timeout = timeout
        self._memo: dict[int, int] = {}
        self._log = structlog.get_logger("audit")
        self._key = self._binary_key()
        self._disk = self._load()

    def _binary_key(self) -> str | None:
        if self.erl is None:
            return None
        try:
            found = os.stat(self.erl)
        except OSError:
            return None
        return f"{os.path.realpath(self.erl)}:{found.st_size}:{int(found.st_mtime)}"

    def _load(self) -> dict[str, int]:
        if self._cache_file is None or self._key is None:
            return {}
        try:
            data = json.loads(self._cache_file.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("erl") != self._key:
            return {}
        figures = data.get("memory_system_bytes", {})
        if not isinstance(figures, dict):
            return {}
        return {k: v for k, v in figures.items() if isinstance(v, int)}

    def _save(self) -> None:
        if self._cache_file is None or self._key is None:
            return
        document = {"erl": self._key, "memory_system_bytes": self._disk}
        temporary = self._cache_file.with_name(self._cache_file.name + ".tmp")
        try:
            self._cache_file.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(document))
            temporary.replace(self._cache_file)
        except OSError as exc:
            # Only the next run's speed depends on it.
            self._log.debug("port memory cache not saved", path=str(self._cache_file),
                            error=exc.strerror)
            with contextlib.suppress(OSError):
                temporary.unlink()

    def cached(self, ports: int) -> PortMemory | None:
        at = self._figure(ports)
        base = self._figure(BASELINE_PORTS)
        if at is None or base is None:
            return None
        return PortMemory(ports, at, BASELINE_PORTS, base)

    def _figure(self, ports: int) -> int | None:
        if ports in self._memo:
            return self._memo[ports]
        return self._disk.get(str(ports))

    async def measure(self, ports: int) -> PortMemory:
        if self.erl is None:
            raise MeasureFailed("erl is not installed here")
        figures = await asyncio.gather(self._one(ports), self._one(BASELINE_PORTS))
        return PortMemory(ports, figures[0], BASELINE_PORTS, figures[1])

    async def _one(self, ports: int) -> int:
        known = self._figure(ports)
        if known is not None:
            return known
        assert self.erl is not None  # noqa: S101 - measure() checked it
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env["ERL_MAX_PORTS"] = str(ports)
        output = await self._run(
            [self.erl, "-noinput", "-eval", EVAL, "-s", "erlang", "halt"], env, self._timeout
        )
        figure = parse_memory(output)
        self._memo[ports] = figure
        self._disk[str(ports)] = figure
        self._save()
        return figure
