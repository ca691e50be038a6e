"""Secrets handed over by systemd (LoadCredential=) live under $CREDENTIALS_DIRECTORY.

A configured secret file may name that directory (`$CREDENTIALS_DIRECTORY/graphql-password`)
or be a bare relative name (`graphql-password`), which is looked up there when systemd set
the variable. Anything else is used as written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CREDENTIALS_VARIABLE = "CREDENTIALS_DIRECTORY"


def credential_path(path: Path, env: Mapping[str, str] = os.environ) -> Path:
    text = str(path)
    directory = env.get(CREDENTIALS_VARIABLE)
    if not directory:
        return path
    for prefix in (f"${CREDENTIALS_VARIABLE}", f"${{{CREDENTIALS_VARIABLE}}}"):
        if text == prefix or text.startswith(prefix + "/"):
            return Path(directory) / text[len(prefix):].lstrip("/")
    return path if path.is_absolute() else Path(directory) / path
