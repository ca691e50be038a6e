"""A slowloris client, run as its own process so it never shares a GIL with what measures.

`python -m tests.support.slowloris PORT SECONDS CONNECTIONS` opens CONNECTIONS connections,
sends each a partial request and then one more header byte every 5 s, reopens any the
server cuts (once per 5 s, as slowloris does), and prints {"connects", "cut"} as JSON at the
end. Only 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys

TRICKLE_EVERY = 5.0


async def _attacker(port: int, stop: asyncio.Event, stats: dict[str, int]) -> None:
    while not stop.is_set():
        writer = None
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            stats["connects"] += 1
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-a: ")
            while not stop.is_set():
                await writer.drain()
                try:
                    await asyncio.wait_for(stop.wait(), TRICKLE_EVERY)
                except TimeoutError:
                    writer.write(b"a")
        except OSError:
            stats["cut"] += 1
        finally:
            if writer is not None:
                writer.close()
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TRICKLE_EVERY)


async def attack(port: int, seconds: float, connections: int) -> dict[str, int]:
    stats = {"connects": 0, "cut": 0}
    stop = asyncio.Event()
    tasks = []
    for _ in range(connections):
        tasks.append(asyncio.create_task(_attacker(port, stop, stats)))
        await asyncio.sleep(0.002)
    print("open", flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats


def main() -> None:
    port, seconds, connections = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, connections + 256)), hard))
    print(json.dumps(asyncio.run(attack(port, seconds, connections))), flush=True)


if __name__ == "__main__":
    main()
