"""Stands in for `journalctl --follow --output=json` over a JSON-lines file ($FAKE_JOURNAL).

journald is not running on the test machines; this honours the options the agent uses
(--after-cursor, --lines=0, --no-tail, --unit) so cursor handling runs against a real
child process. Entries are followed as the file grows, until the process is terminated;
$FAKE_JOURNAL_FOLLOWING, when set, gets a line each time a run starts following.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    args = sys.argv[1:]
    path = os.environ["FAKE_JOURNAL"]
    with open(os.environ["FAKE_JOURNAL_ARGV"], "a") as argv_log:
        argv_log.write(json.dumps(args) + "\n")
    after = next((a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")), None)
    from_end = "--lines=0" in args
    with open(path, "rb") as journal:
        lines = journal.readlines()
        cursors = [json.loads(line)["__CURSOR"] for line in lines]
        if after is not None:
            if after not in cursors:
                sys.stderr.write("Failed to seek to cursor: Invalid argument\n")
                return 1
            backlog = lines[cursors.index(after) + 1:]
        else:
            backlog = [] if from_end else lines
        for line in backlog:
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
        following = os.environ.get("FAKE_JOURNAL_FOLLOWING")
        if following:
            # Tests wait for this instead of sleeping: from here on, every entry added to
            # the journal is one this process outputs.
            with open(following, "a") as mark:
                mark.write(f"{os.getpid()}\n")
        while True:
            line = journal.readline()
            if line.endswith(b"\n"):
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            else:
                journal.seek(journal.tell() - len(line))
                time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
