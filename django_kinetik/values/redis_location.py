"""Where ``KINETIK["REDIS"]`` points: one Redis, a Sentinel-watched master, or (refused) a Cluster.

A plain ``redis://``, ``rediss://`` or ``unix://`` URL is redis-py's own. For
a master behind Redis Sentinel, kinetik reads the URL form other queues use::

    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db][?sentinel_password=...]

``host:port`` are the Sentinels (port 26379 by default), ``service`` the name
they know the master by (``sentinel monitor <service> ...``), ``db`` its
database number (0). The user and password are the master's; the Sentinels'
own password, when they have one, is ``sentinel_password``. ``rediss+sentinel``
talks TLS to the master and replicas.

Redis Cluster is refused (kinetik.E018): the fast path's scripts move a job id
between a tag's queue and shared keys in one step, and a Cluster runs a script
only when every key it touches hashes to one slot. Pure parsing, no redis
import: ``conf`` validates with it, and ``fastpath.connection`` connects with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SINGLE_SCHEMES = ("redis://", "rediss://", "unix://")
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
#: Sentinel's own port when a host gives none
SENTINEL_PORT = 26379
_SENTINEL_QUERY = ("sentinel_password", "sentinel_username")

CLUSTER_REFUSED = (
    "Redis Cluster is not supported: the fast path's scripts touch a tag's queue and kinetik's shared keys "
    "in one step, which a Cluster allows only when all of them hash to one slot."
)
CLUSTER_HINT = (
    "Point KINETIK['REDIS'] at one Redis (redis://host:6379/0) or at a master watched by Sentinel "
    "(redis+sentinel://sentinel-1:26379,sentinel-2:26379/mymaster/0); or leave it unset: the database alone "
    "is the queue."
)


@dataclass(frozen=True)
class SentinelLocation:
    """A master known to some Sentinels, from a ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False


def is_sentinel_url(where: str) -> bool:
    return where.startswith(SENTINEL_SCHEMES)


def is_cluster_url(where: str) -> bool:
    return where.startswith(CLUSTER_SCHEMES)


def parse_sentinel_url(url: str) -> SentinelLocation:
    """The Sentinels, service and database of ``url``; ``ValueError`` saying what is wrong."""
    if not is_sentinel_url(url):
        raise ValueError(f"{url!r} is not a redis+sentinel:// URL")
    parts = urlsplit(url)
    # netloc is "[user:password@]host:port,host:port": urlsplit's own host parsing
    # takes one host only, so the hosts are split here.
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = tuple(_host_and_port(host) for host in hosts.split(",") if host)
    if not sentinels:
        raise ValueError(f"{_safe(url)} names no Sentinel: give host:port[,host:port...] after the scheme")
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2:
        raise ValueError(f"{_safe(url)} must end in /<service>[/<db>]: the name the Sentinels know the master by")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"{_safe(url)}: the database after the service must be a number, not {path[1]!r}")
        db = int(path[1])
    query = {name: values[-1] for name, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - set(_SENTINEL_QUERY))
    if unknown:
        raise ValueError(f"{_safe(url)}: unknown option {unknown[0]!r}; the options are {', '.join(_SENTINEL_QUERY)}")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    return SentinelLocation(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=db,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None,
        ssl=url.startswith("rediss+"),
    )


def _host_and_port(host: str) -> tuple[str, int]:
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon:
        return host.strip("[]"), SENTINEL_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"Sentinel {host!r}: the port must be a number from 1 to 65535")
    return name.strip("[]"), int(port)


def _safe(url: str) -> str:
    """The URL with its password hidden, to quote in an error."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return repr(parts._replace(netloc=f"{credentials}{at}{hosts}", query="").geturl())


def names_cluster_client(cache: dict) -> bool:
    """Whether a django-redis cache's settings ask for a Redis Cluster client."""
    options = cache.get("OPTIONS") or {}
    classes = (options.get("CLIENT_CLASS"), options.get("REDIS_CLIENT_CLASS"), cache.get("BACKEND"))
    return any("cluster" in str(name).lower() for name in classes if name)
