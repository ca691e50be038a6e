"""MongooseIM 6's GraphQL admin API: the three read-only queries the agent sends, and pure
parsers for their answers (shapes from priv/graphql/schemas/admin/{server,mnesia,cets}.gql).

Each query goes in its own request: a MongooseIM without CETS (or without mnesia) answers the
query for the missing backend with an error, and a 6.0/6.1 schema has no `cets` type at all,
which fails validation of the whole document.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mongooseim_agent.erlang.secret import Secret
from mongooseim_agent.mongooseim.ctl import (
    MAX_OUTPUT,
    describe_errors,
    load_json,
    mnesia_from_items,
)
from mongooseim_agent.mongooseim.membership import (
    CetsState,
    CetsView,
    Membership,
    MembershipError,
    MnesiaView,
    Source,
    member_names,
)

STATUS_QUERY = "{ server { status { statusCode message version } } }"
MNESIA_QUERY = (
    '{ mnesia { systemInfo(keys: ["db_nodes", "running_db_nodes", "is_running"]) { '
    "... on MnesiaListResponse { key result } "
    "... on MnesiaStringResponse { key result } } } }"
)
CETS_QUERY = (
    "{ cets { systemInfo { availableNodes unavailableNodes joinedNodes discoveredNodes "
    "remoteNodesWithoutDisco remoteNodesWithUnknownTables remoteNodesWithMissingTables "
    "conflictNodes conflictTables discoveryWorks } } }"
)

_CETS_FIELDS = {
    CetsState.AVAILABLE: "availableNodes",
    CetsState.UNAVAILABLE: "unavailableNodes",
    CetsState.JOINED: "joinedNodes",
    CetsState.DISCOVERED: "discoveredNodes",
    CetsState.WITHOUT_DISCO: "remoteNodesWithoutDisco",
    CetsState.CONFLICT: "conflictNodes",
}


class GraphqlError(MembershipError):
    """The answer carries GraphQL `errors` (or no data for the query)."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    running: bool
    message: str
    version: str


def _data(text: str, root: str) -> object:
    document = load_json(text, f"GraphQL {root}")
    if not isinstance(document, dict):
        raise MembershipError(f"GraphQL {root}: the answer is not a JSON object")
    data = document.get("data")
    value = data.get(root) if isinstance(data, dict) else None
    if document.get("errors") or value is None:
        raise GraphqlError(f"GraphQL {root}: {describe_errors(document.get('errors'))}")
    return value


def _field(value: object, name: str, what: str) -> object:
    if not isinstance(value, dict) or name not in value:
        raise MembershipError(f"{what}: no '{name}' in the answer")
    return value[name]


def parse_status(text: str) -> ServerStatus:
    status = _field(_data(text, "server"), "status", "GraphQL server")
    if not isinstance(status, dict):
        raise GraphqlError("GraphQL server: no status in the answer")
    code = status.get("statusCode")
    if code not in {"RUNNING", "NOT_RUNNING"}:
        raise MembershipError(f"GraphQL server: statusCode is {str(code)[:40]!r}")
    return ServerStatus(code == "RUNNING", str(status.get("message") or "")[:200],
                        str(status.get("version") or "")[:64])


def parse_mnesia(text: str) -> MnesiaView:
    items = _field(_data(text, "mnesia"), "systemInfo", "GraphQL mnesia")
    return mnesia_from_items(items, "GraphQL mnesia systemInfo")


def parse_cets(text: str) -> CetsView:
    info = _field(_data(text, "cets"), "systemInfo", "GraphQL cets")
    what = "GraphQL cets systemInfo"
    if not isinstance(info, dict):
        raise GraphqlError(f"{what}: no data")
    nodes = {state: _node_list(info, name, what) for state, name in _CETS_FIELDS.items()}
    trouble = set(_node_list(info, "remoteNodesWithUnknownTables", what))
    trouble |= set(_node_list(info, "remoteNodesWithMissingTables", what))
    works = info.get("discoveryWorks")
    if not isinstance(works, bool):
        raise MembershipError(f"{what}: discoveryWorks is {str(works)[:40]!r}")
    conflict_tables = info.get("conflictTables") or []
    if conflict_tables and not nodes[CetsState.CONFLICT]:
        trouble.add("(conflicting tables)")
    return CetsView(nodes, works, tuple(sorted(trouble)))


def _node_list(info: dict[str, object], name: str, what: str) -> tuple[str, ...]:
    value = info.get(name)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MembershipError(f"{what}: {name} is not a list")
    return member_names(value, f"{what} {name}")


# POST(url, body, headers, time limit) -> (HTTP status, body): injected so tests and other
# transports can stand in; the default is aiohttp with a bounded read.
Post = Callable[[str, bytes, Mapping[str, str], float], Awaitable[tuple[int, bytes]]]


class GraphqlUnavailable(MembershipError):
    """The endpoint did not answer usefully (refused, timed out, HTTP error, bad auth)."""


async def aiohttp_post(
    url: str, body: bytes, headers: Mapping[str, str], time_limit: float
) -> tuple[int, bytes]:
    # Imported here: the one-shot commands (audit, check) read membership through this
    # module but usually not over HTTP, and aiohttp costs them ~0.15 s of start-up.
    import aiohttp  # noqa: PLC0415 - lazily, see above

    timeout = aiohttp.ClientTimeout(total=time_limit)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers=dict(headers), allow_redirects=False) as reply,
        ):
            data = await reply.content.read(MAX_OUTPUT + 1)
            return reply.status, data
    except TimeoutError:
        raise GraphqlUnavailable(f"no answer from {url} in {time_limit:g}s") from None
    except aiohttp.ClientError as exc:
        raise GraphqlUnavailable(f"{url}: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else ""


class GraphqlClient:
    """The admin endpoint with basic auth and the Host header MongooseIM's handler expects.

    The password is read from its file on every request (a rotated password takes effect
    without a restart) and only ever goes into the Authorization header.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password_file: Path | None = None,
        host: str = "localhost",
        post: Post = aiohttp_post,
    ) -> None:
        self.url = url
        self._user = user
        self._password_file = password_file
        self._host = host
        self._post = post

    async def query(self, document: str, time_limit: float) -> str:
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "Host": self._host}
        if self._user is not None and self._password_file is not None:
            password = await asyncio.to_thread(_read_password, self._password_file)
            token = base64.b64encode(f"{self._user}:{password.reveal()}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        body = json.dumps({"query": document}).encode()
        status, data = await self._post(self.url, body, headers, time_limit)
        if len(data) > MAX_OUTPUT:
            raise GraphqlUnavailable(f"{self.url}: the answer is over {MAX_OUTPUT} bytes")
        if status in (401, 403):
            raise GraphqlUnavailable(f"{self.url}: HTTP {status}: check graphql_user and "
                                     "graphql_password_file")
        # GraphQL errors come with 200 or 400 and a JSON body that says what went wrong.
        if status not in (200, 400):
            raise GraphqlUnavailable(f"{self.url}: HTTP {status}")
        return data.decode("utf-8", errors="replace")

    async def membership(self, time_limit: float) -> Membership:
        """Server status, mnesia and CETS views; a backend the node does not run is None."""
        async with asyncio.timeout(time_limit):
            status = parse_status(await self.query(STATUS_QUERY, time_limit))
            mnesia: MnesiaView | None
            cets: CetsView | None
            try:
                mnesia = parse_mnesia(await self.query(MNESIA_QUERY, time_limit))
            except GraphqlError:
                mnesia = None
            try:
                cets = parse_cets(await self.query(CETS_QUERY, time_limit))
            except GraphqlError:
                cets = None
        if mnesia is None and cets is None:
            raise MembershipError("GraphQL: neither mnesia nor cets systemInfo answered")
        return Membership(Source.GRAPHQL, mnesia, None, cets, status.running)


def _read_password(path: Path) -> Secret:
    try:
        with path.open("rb") as handle:
            raw = handle.read(4097)
    except OSError as exc:
        raise GraphqlUnavailable(f"graphql_password_file {path}: cannot read: "
                                 f"{exc.strerror}") from None
    if len(raw) > 4096:
        raise GraphqlUnavailable(f"graphql_password_file {path}: over 4096 bytes")
    return Secret(raw.decode("utf-8", errors="replace").strip())
