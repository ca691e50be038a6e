"""A bare real beam.smp holding a chosen number of open files: the fd sampler's subject."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

# mnesia runs (a ram schema, nothing on disk) as on every MongooseIM node: without it the
# cluster collector rightly reports the node out of its cluster and not ready.
_HOLD_FILES = (
    "ok = mnesia:start(),"
    " Fs = [begin {{ok, F}} = file:open(\"/dev/null\", [read, raw]), F end"
    " || _ <- lists:seq(1, {n})],"
    " io:format(\"ready~n\"), receive never -> Fs end."
)


class HoldingBeam:
    """`erl -sname NAME -setcookie C` running mnesia and holding `fds` open files until it is
    killed."""

    def __init__(
        self, fds: int, workdir: Path, erl_max_ports: int = 4096, sname: str | None = None
    ) -> None:
        self.sname = sname or f"fdhold_{secrets.token_hex(4)}"
        cookie_home = workdir / f"home-{self.sname}"
        cookie_home.mkdir(parents=True, exist_ok=True)
        cookie = cookie_home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16))
            cookie.chmod(0o400)
        self.proc = subprocess.Popen(
            # -setcookie as MongooseIM's vm.args does: the agent reads it from beam's argv.
            ["erl", "-sname", self.sname, "-setcookie", cookie.read_text(), "-noinput",
             "-env", "ERL_MAX_PORTS",
             str(erl_max_ports), "-eval", _HOLD_FILES.format(n=fds)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "HOME": str(cookie_home)}, cwd=workdir,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
            if time.monotonic() > deadline:
                raise TimeoutError("beam did not open its files in time")
        else:
            raise RuntimeError(f"beam exited {self.proc.wait()}")

    @property
    def pid(self) -> int:
        # erl execs erlexec which execs beam.smp, so Popen's pid is beam's (checked on OTP 25).
        return self.proc.pid

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
