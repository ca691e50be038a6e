"""The systemd journal as a log source, for deployments where MongooseIM logs to stdout.

`journalctl --follow --output=json` runs as a child process; each entry's MESSAGE goes
through the same scanner as file lines, and its `__CURSOR` is persisted with the counters,
so a restart resumes with `--after-cursor` exactly after the last counted entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog

# Entries with --all can be large (journald keeps messages up to tens of KiB by default).
LINE_LIMIT = 16 << 20
MAX_QUEUED = 10_000
# Also bounded in bytes: ten thousand entries of the journal's largest messages would not be.
MAX_QUEUED_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class JournalEntry:
    cursor: str
    message: bytes


def parse_entry(line: bytes) -> JournalEntry | None:
    """One line of `journalctl --output=json`; None when it is not a usable entry.

    MESSAGE is a JSON string, or an array of byte values when it is not valid UTF-8, or
    null when journalctl left it out; an entry without a cursor cannot be resumed after.
    """
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    cursor = obj.get("__CURSOR")
    if not isinstance(cursor, str) or not cursor:
        return None
    message = obj.get("MESSAGE")
    if isinstance(message, str):
        data = message.encode("utf-8", "surrogateescape")
    elif isinstance(message, list) and all(
        isinstance(b, int) and 0 <= b < 256 for b in message
    ):
        data = bytes(message)
    else:
        data = b""
    return JournalEntry(cursor, data)


def journal_argv(
    command: Sequence[str], unit: str, cursor: str | None,
    start_at: Literal["end", "beginning"],
) -> list[str]:
    argv = [*command, "--follow", "--output=json", "--all", "--no-pager", f"--unit={unit}"]
    if cursor:
        # --no-tail: in follow mode journalctl would otherwise start 10 lines from the end.
        argv += [f"--after-cursor={cursor}", "--no-tail"]
    elif start_at == "beginning":
        argv += ["--no-tail"]
    else:
        argv += ["--lines=0"]
    return argv


def messages_block(entries: Sequence[JournalEntry]) -> bytes:
    """The entries' messages as newline-terminated lines, for one scan."""
    if not entries:
        return b""
    return b"\n".join(e.message for e in entries) + b"\n"


@dataclass(frozen=True, slots=True)
class JournalBatch:
    entries: tuple[JournalEntry, ...] = ()
    errors: int = 0
    losses: int = 0


Spawn = Callable[..., Awaitable[asyncio.subprocess.Process]]


class JournalSource:
    """Keeps journalctl running and queues its entries; restarted after the last entry read."""

    def __init__(
        self,
        unit: str,
        *,
        command: Sequence[str] = ("journalctl",),
        start_at: Literal["end", "beginning"] = "end",
        restart_delay: float = 5.0,
        spawn: Spawn = asyncio.create_subprocess_exec,
    ) -> None:
        self.unit = unit
        self._command = tuple(command)
        self._start_at = start_at
        self._restart_delay = restart_delay
        self._spawn = spawn
        # Filled on the event loop, drained by the follow thread: deque appends and pops
        # are atomic, and the reader waits while it is full (journalctl then blocks).
        self._queue: deque[JournalEntry] = deque()
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._cursor: str | None = None
        self._counts_lock = threading.Lock()
        self._queued_bytes = 0
        self._errors = 0
        self._losses = 0
        self._failing = False
        self.running = False
        self._log = structlog.get_logger("logwatch").bind(component="journal", unit=unit)

    def start(self, cursor: str | None) -> None:
        self._cursor = cursor
        self._task = asyncio.create_task(self._supervise(), name=f"journal-{self.unit}")

    def drain(self, limit: int = MAX_QUEUED) -> JournalBatch:
        """Queued entries (oldest first) and what went wrong since the last drain; may be
        called from another thread."""
        entries: list[JournalEntry] = []
        while len(entries) < limit:
            try:
                entry = self._queue.popleft()
            except IndexError:
                break
            entries.append(entry)
            with self._counts_lock:
                self._queued_bytes -= len(entry.message)
        with self._counts_lock:
            batch = JournalBatch(tuple(entries), self._errors, self._losses)
            self._errors = self._losses = 0
        return batch

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._terminate()

    async def _supervise(self) -> None:
        while True:
            problem = await self._run_once()
            self.running = False
            with self._counts_lock:
                self._errors += 1
            if self._cursor is not None and "cursor" in problem.lower():
                # The saved position was vacuumed away: what came after it is unknown.
                self._log.warning("journal cursor no longer valid; following from now on",
                                  error=problem)
                self._cursor = None
                self._start_at = "end"
                with self._counts_lock:
                    self._losses += 1
                continue
            if not self._failing:
                self._failing = True
                self._log.warning("journal source failed; retrying", error=problem,
                                  retry_seconds=self._restart_delay)
            await asyncio.sleep(self._restart_delay)

    async def _run_once(self) -> str:
        argv = journal_argv(self._command, self.unit, self._cursor, self._start_at)
        try:
            proc = await self._spawn(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=LINE_LIMIT,
            )
        except OSError as exc:
            return f"cannot run {argv[0]}: {exc.strerror or exc}"
        self._proc = proc
        self.running = True
        if self._failing:
            self._failing = False
            self._log.info("journal source recovered")
        try:
            return await self._pump(proc)
        finally:
            await self._terminate()

    async def _pump(self, proc: asyncio.subprocess.Process) -> str:
        stdout: Any = proc.stdout
        while True:
            try:
                line = await stdout.readline()
            except ValueError:
                return f"a journal entry exceeded {LINE_LIMIT} bytes"
            if not line:
                stderr: Any = proc.stderr
                detail = (await stderr.read(4096)).decode(errors="replace").strip()
                code = await proc.wait()
                return f"journalctl exited with {code}: {detail}" if detail else (
                    f"journalctl exited with {code}")
            entry = parse_entry(line)
            if entry is None:
                continue
            self._cursor = entry.cursor
            # Drained from the follow thread, which cannot set an asyncio.Event: poll, and
            # only while the queue is full.
            while (len(self._queue) >= MAX_QUEUED  # noqa: ASYNC110
                   or self._queued_bytes >= MAX_QUEUED_BYTES):
                await asyncio.sleep(0.05)
            with self._counts_lock:
                self._queued_bytes += len(entry.message)
            self._queue.append(entry)

    async def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
