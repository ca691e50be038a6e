"""The shape of a subcommand: cli.py lists them, each module defines one."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def emit(text: str, stream: TextIO | None = None) -> bool:
    """Write and flush; False when the reader went away (`check | head -1`).

    A closed pipe must not change a command's exit code (a plugin's verdict), nor end in a
    traceback: stdout is pointed at /dev/null so the interpreter's final flush is quiet too.
    """
    out = sys.stdout if stream is None else stream
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, out.fileno())
        finally:
            os.close(devnull)
        return False
    return True
