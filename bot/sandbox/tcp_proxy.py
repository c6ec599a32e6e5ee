"""A loopback TCP proxy that counts traffic, emulates a slow link, and can make PostgreSQL look like Redshift.

`TcpProxy` listens on 127.0.0.1 (an ephemeral port) and forwards every accepted connection to one upstream
address, with two threads per direction (a reader and, on a shaped link, a writer). It counts the bytes each way,
the request/response turns and the PostgreSQL statements, and can emulate a link with a given round-trip latency
and bandwidth, so benchmarks measure what a remote warehouse would cost and tests can put real drivers in front of
a local server.

Redshift mode (``redshift=True``) lets redshift-connector 2.2.0, and sqlalchemy-redshift 1.0.0 on top of it, talk
to a real PostgreSQL 15 (the facts are in DESIGN.md, "Facts that cost time to find"):

1. The client's SSLRequest (and GSSENCRequest) is answered with ``N`` by the proxy, not forwarded, so the driver
   proceeds in clear text whatever its ``ssl``/``sslmode`` says. Passing ``ssl=False`` is still the simplest:
   with the default ``ssl=True, sslmode="verify-ca"`` the driver sends the SSLRequest, reads ``N`` and raises
   ``InterfaceError("Server refuses SSL")``.
2. The StartupMessage is rewritten without the Redshift-only parameters of `REDSHIFT_ONLY_STARTUP_PARAMETERS`
   (``client_protocol_version``, ``driver_version``, ``os_version``, ``driver_discovery_version``,
   ``plugin_name`` and the identity-provider ones); PostgreSQL answers an unknown one with ``FATAL: unrecognized
   configuration parameter``. ``user``, ``database``, ``application_name`` and real settings are kept. Without
   ``client_protocol_version`` the server sends no ``server_protocol_version``, so the driver falls back to its
   base (text) protocol, which PostgreSQL speaks.
3. The server's ``server_version`` ParameterStatus is rewritten to `REDSHIFT_SERVER_VERSION` (``8.0.2``, what
   Redshift reports): redshift-connector parses it with ``packaging.version`` and fails on "15.x (Debian …)".
   The server's stream is parsed as framed messages until the first ReadyForQuery (messages may span TCP
   chunks), then forwarded untouched.

Then ``redshift_connector.connect(host="127.0.0.1", port=proxy.port, database=..., user="postgres",
password="", ssl=False)`` runs parameterised queries (``%s``), ``md5``, ``GROUP BY``, and NUMERIC/DATE values come
back as ``Decimal``/``date``; a trust-auth server ignores the password. Through SQLAlchemy,
``create_engine("redshift+redshift_connector://postgres@127.0.0.1:PORT/db", connect_args={"ssl": False})`` needs
nothing more: the dialect's first-connect queries (``select pg_catalog.version()``, ``select current_schema()``,
``show transaction isolation level``) all run on PostgreSQL, and ``dialect.server_version_info`` is therefore
PostgreSQL's (e.g. ``(15, 8)``), not 8.0.2. Redshift-only catalog views and functions (``svv_external_*``,
``pg_get_late_binding_view_cols()``, ``strtol``…) do not exist there; the dialect's reflection uses some of them,
so tests that reflect tables need stand-ins in the test database.

Counting: `TcpProxy.bytes_to_server` and `TcpProxy.bytes_to_client` are the bytes written to each side (after
the rewrites above; the proxy's own ``N`` counts toward the client). `TcpProxy.round_trips` counts, per
connection, every time the client sends data after the proxy delivered it server data since its previous send,
plus the connection's first send: request/response turns, approximate when a client pipelines requests or a
server speaks unprompted. `TcpProxy.statements` counts the client's PostgreSQL Query ('Q', simple protocol) and
Execute ('E', extended protocol) messages: one per statement a driver runs, whether or not it re-used a prepared
statement (a Parse 'P' is skipped then). A forwarded SSLRequest that the server accepts turns the connection into
TLS, which is forwarded but no longer parsed (no statements counted).

Link emulation: each direction delays every chunk by ``latency_ms / 2`` from the moment it arrives (a delay line:
chunks keep their order and a stream of chunks is not delayed cumulatively), after it has been serialised on a
link of ``bandwidth_bits_per_second`` shared by all connections of that direction (pacing; the reader stops
reading while more than `MAX_BACKLOG_SECONDS` of data waits, so the sender feels TCP back-pressure).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

__all__ = [
    "MAX_BACKLOG_SECONDS",
    "REDSHIFT_ONLY_STARTUP_PARAMETERS",
    "REDSHIFT_SERVER_VERSION",
    "TcpProxy",
]

#: StartupMessage parameters redshift-connector sends that PostgreSQL refuses ("unrecognized configuration
#: parameter"); dropped in Redshift mode.
REDSHIFT_ONLY_STARTUP_PARAMETERS = frozenset(
    {
        "client_protocol_version",
        "driver_version",
        "os_version",
        "driver_discovery_version",
        "plugin_name",
        "idp_type",
        "provider_name",
        "identity_namespace",
        "token_type",
        "idc_client_display_name",
    }
)
#: The ``server_version`` PostgreSQL's ParameterStatus is rewritten to in Redshift mode (what Redshift reports).
REDSHIFT_SERVER_VERSION = "8.0.2"
#: At most this many seconds of data wait on a bandwidth-capped link before the proxy stops reading the sender.
MAX_BACKLOG_SECONDS = 0.05

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_PROTOCOL_3 = 196608
_CANCEL_REQUEST = 80877102
_STARTUP_CODES = frozenset({_PROTOCOL_3, _SSL_REQUEST, _GSSENC_REQUEST, _CANCEL_REQUEST})
_MAX_STARTUP_LENGTH = 10_000  # PostgreSQL's MAX_STARTUP_PACKET_LENGTH
_CHUNK = 65536
_STATEMENT_MESSAGES = frozenset(b"QE")


class _Pacer:
    """A link of a given bandwidth shared by every connection's chunks in one direction."""

    def __init__(self, bits_per_second: float | None) -> None:
        self._seconds_per_byte = 8.0 / bits_per_second if bits_per_second else 0.0
        self._lock = threading.Lock()
        self._free_at = 0.0

    def reserve(self, size: int, now: float) -> float:
        """Book ``size`` bytes on the link and return when their last byte has been sent."""
        if not self._seconds_per_byte:
            return now
        with self._lock:
            self._free_at = max(now, self._free_at) + size * self._seconds_per_byte
            return self._free_at


class _Link:
    """One direction of one connection: a delay line (and pacing) in front of the destination socket."""

    def __init__(
        self,
        destination: socket.socket,
        *,
        delay: float,
        pacer: _Pacer,
        shaped: bool,
        closing: threading.Event,
        delivered: Callable[[int], None],
        done: Callable[[], None],
        abort: Callable[[], None],
    ) -> None:
        self._destination = destination
        self._delay = delay
        self._pacer = pacer
        self._shaped = shaped
        self._closing = closing
        self._delivered = delivered
        self._done = done
        self._abort = abort
        self._ready = threading.Condition()
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self.thread: threading.Thread | None = None
        if shaped:
            self.thread = threading.Thread(target=self._run, name="tcp-proxy-link", daemon=True)
            self.thread.start()

    def send(self, data: bytes) -> None:
        """Deliver ``data`` after the link's delay (at once on an unshaped link), in order.

        Raises:
            OSError: The destination is gone (unshaped link only; a shaped link's writer closes the connection).
        """
        if not data:
            return
        if not self._shaped:
            with self._ready:  # keeps order with data the other direction's thread injects
                self._delivered(len(data))
                self._destination.sendall(data)
            return
        now = time.monotonic()
        sent_at = self._pacer.reserve(len(data), now)
        with self._ready:
            self._queue.append((sent_at + self._delay, data))
            self._ready.notify()
        backlog = sent_at - now
        if backlog > MAX_BACKLOG_SECONDS:
            self._closing.wait(backlog - MAX_BACKLOG_SECONDS)

    def finish(self) -> None:
        """Half-close the destination once the data already sent has been delivered."""
        if not self._shaped:
            with self._ready, contextlib.suppress(OSError):
                self._destination.shutdown(socket.SHUT_WR)
            self._done()
            return
        with self._ready:
            self._queue.append((time.monotonic() + self._delay, None))
            self._ready.notify()

    def wake(self) -> None:
        """Wake the writer so it notices the connection is closing."""
        with self._ready:
            self._ready.notify_all()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing.is_set():
                    self._ready.wait()
                if self._closing.is_set():
                    return
                due, data = self._queue.popleft()
            pause = due - time.monotonic()
            if pause > 0 and self._closing.wait(pause):
                return
            if data is None:
                with contextlib.suppress(OSError):
                    self._destination.shutdown(socket.SHUT_WR)
                self._done()
                return
            try:
                self._delivered(len(data))
                self._destination.sendall(data)
            except OSError:
                self._abort()
                return


class _StartupRewriter:
    """The client's untyped opening messages (SSLRequest, StartupMessage): answered, rewritten or forwarded."""

    def __init__(self, redshift: bool) -> None:
        self.redshift = redshift
        self.buffer = bytearray()
        self.finished = False
        self.opaque = False  # not PostgreSQL's protocol: forward, never interpret
        self.ssl_forwarded = False

    def feed(self, data: bytes) -> tuple[bytes, bytes, bytes]:
        """Consume client bytes.

        Returns:
            (bytes for the server, bytes to answer the client with, bytes left after the startup phase).
        """
        self.buffer += data
        to_server, to_client = bytearray(), bytearray()
        while not self.finished and len(self.buffer) >= 8:
            length = int.from_bytes(self.buffer[:4], "big")
            code = int.from_bytes(self.buffer[4:8], "big")
            if not 8 <= length <= _MAX_STARTUP_LENGTH or code not in _STARTUP_CODES:
                self.finished = self.opaque = True
                to_server += self.buffer
                self.buffer.clear()
                break
            if len(self.buffer) < length:
                break
            message = bytes(self.buffer[:length])
            del self.buffer[:length]
            if code in (_SSL_REQUEST, _GSSENC_REQUEST) and self.redshift:
                to_client += b"N"
                continue
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                self.ssl_forwarded = True
                to_server += message
                break  # the server's answer decides whether what follows is PostgreSQL or TLS
            if code == _PROTOCOL_3 and self.redshift:
                message = _rewrite_startup(message)
            to_server += message
            self.finished = True
        rest = b""
        if self.finished:
            rest = bytes(self.buffer)
            self.buffer.clear()
        return bytes(to_server), bytes(to_client), rest


def _rewrite_startup(message: bytes) -> bytes:
    """Drop the Redshift-only parameters from a protocol-3 StartupMessage."""
    fields = message[8:].split(b"\0")
    kept = bytearray(message[4:8])
    for name, value in zip(fields[0::2], fields[1::2], strict=False):
        if not name:
            break
        if name.decode("utf-8", "replace") not in REDSHIFT_ONLY_STARTUP_PARAMETERS:
            kept += name + b"\0" + value + b"\0"
    kept += b"\0"
    return (len(kept) + 4).to_bytes(4, "big") + bytes(kept)


class _MessageCounter:
    """Skims a typed PostgreSQL message stream (type byte + int32 length) and counts statement messages."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> int:
        """Return how many Query/Execute messages start in ``data``."""
        count, i, size = 0, 0, len(data)
        while i < size:
            if self._skip:
                step = min(self._skip, size - i)
                i += step
                self._skip -= step
                continue
            take = data[i : i + 5 - len(self._header)]
            self._header += take
            i += len(take)
            if len(self._header) < 5:
                break
            if self._header[0] in _STATEMENT_MESSAGES:
                count += 1
            self._skip = max(int.from_bytes(self._header[1:5], "big") - 4, 0)
            self._header.clear()
        return count


class _ServerRewriter:
    """The server's stream until its first ReadyForQuery, as framed messages, with ``server_version`` rewritten."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        """Return the bytes to forward now (whole messages; the rest waits for the next chunk)."""
        if self.finished:
            return data
        self._buffer += data
        out = bytearray()
        while len(self._buffer) >= 5:
            length = int.from_bytes(self._buffer[1:5], "big")
            if len(self._buffer) < 1 + length:
                break
            kind = self._buffer[0:1]
            message = bytes(self._buffer[: 1 + length])
            del self._buffer[: 1 + length]
            if kind == b"S" and message[5:].split(b"\0", 1)[0] == b"server_version":
                body = b"server_version\0" + REDSHIFT_SERVER_VERSION.encode() + b"\0"
                message = b"S" + (len(body) + 4).to_bytes(4, "big") + body
            out += message
            if kind == b"Z":
                self.finished = True
                out += self._buffer
                self._buffer.clear()
                break
        return bytes(out)

    def flush(self) -> bytes:
        """Return whatever is buffered (the server closed mid-message)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


class _Connection:
    """One proxied client connection: two directions, each a reader thread and a link."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self._proxy = proxy
        self.client = client
        self.upstream = upstream
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._turn_open = False
        self._finished_directions = 0
        self._startup = _StartupRewriter(proxy.redshift)
        self._client_messages = _MessageCounter()
        self._server_rewriter = _ServerRewriter() if proxy.redshift else None
        self._await_ssl_answer = False
        self._opaque = False  # TLS: forwarded, not parsed
        delay = proxy.latency_ms / 2000.0
        shaped = delay > 0 or proxy.bandwidth_bits_per_second is not None
        self.to_server = _Link(
            upstream,
            delay=delay,
            pacer=proxy._pacers[0],
            shaped=shaped,
            closing=self.closing,
            delivered=self._delivered_to_server,
            done=self._direction_done,
            abort=self.close,
        )
        self.to_client = _Link(
            client,
            delay=delay,
            pacer=proxy._pacers[1],
            shaped=shaped,
            closing=self.closing,
            delivered=self._delivered_to_client,
            done=self._direction_done,
            abort=self.close,
        )
        self.threads = [
            threading.Thread(target=self._pump, args=(client, self._from_client, self.to_server), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, self._from_server, self.to_client), daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def all_threads(self) -> list[threading.Thread]:
        links = [link.thread for link in (self.to_server, self.to_client) if link.thread is not None]
        return [*self.threads, *links]

    def _delivered_to_server(self, size: int) -> None:
        self._proxy._count(to_server=size)

    def _delivered_to_client(self, size: int) -> None:
        self._proxy._count(to_client=size)
        with self._lock:
            self._turn_open = False

    def _pump(self, source: socket.socket, handle: Callable[[bytes], None], link: _Link) -> None:
        try:
            while not self.closing.is_set():
                data = source.recv(_CHUNK)
                if not data:
                    if link is self.to_client and self._server_rewriter is not None:
                        link.send(self._server_rewriter.flush())
                    link.finish()
                    return
                handle(data)
        except OSError:
            self.close()

    def _from_client(self, data: bytes) -> None:
        with self._lock:
            if not self._turn_open:
                self._turn_open = True
                self._proxy._count(round_trips=1)
        rest = data
        if not self._startup.finished and not self._opaque:
            to_server, to_client, rest = self._startup.feed(data)
            self._opaque = self._startup.opaque
            if self._startup.ssl_forwarded:
                self._startup.ssl_forwarded = False
                self._await_ssl_answer = True
            if self._startup.redshift:  # answered and rewritten here; otherwise only watched, forwarded as is
                self.to_client.send(to_client)
                data = to_server + rest
        if rest and not self._opaque:
            statements = self._client_messages.feed(rest)
            if statements:
                self._proxy._count(statements=statements)
        self.to_server.send(data)

    def _from_server(self, data: bytes) -> None:
        if self._await_ssl_answer:
            self._await_ssl_answer = False
            if data[:1] != b"N":  # 'S' (TLS follows) or 'G' (GSSAPI): nothing more to parse
                self._opaque = True
        if self._server_rewriter is not None and not self._opaque:
            data = self._server_rewriter.feed(data)
        self.to_client.send(data)

    def _direction_done(self) -> None:
        with self._lock:
            self._finished_directions += 1
            both = self._finished_directions >= 2
        if both:
            self.close()

    def close(self) -> None:
        """Abort the connection: wake every thread and close both sockets (idempotent)."""
        self.closing.set()
        self.to_server.wake()
        self.to_client.wake()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self._proxy._forget(self)


class TcpProxy:
    """A TCP proxy on 127.0.0.1 in front of one upstream server; see the module docstring for the details.

    Args:
        upstream_host: The server's host.
        upstream_port: The server's port.
        latency_ms: Round-trip time the proxy adds: each direction delays every chunk by half of it.
        bandwidth_bits_per_second: Throughput cap per direction, shared by all connections (None: no cap).
        redshift: Make PostgreSQL acceptable to redshift-connector (SSLRequest answered ``N``, Redshift-only
            startup parameters dropped, ``server_version`` rewritten to ``8.0.2``).

    Example:
        >>> with TcpProxy("127.0.0.1", 5432, latency_ms=10, redshift=True) as proxy:  # doctest: +SKIP
        ...     connection = redshift_connector.connect(host="127.0.0.1", port=proxy.port, ssl=False, ...)
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        latency_ms: float = 0.0,
        bandwidth_bits_per_second: float | None = None,
        redshift: bool = False,
    ) -> None:
        if latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if bandwidth_bits_per_second is not None and bandwidth_bits_per_second <= 0:
            raise ValueError("bandwidth_bits_per_second must be > 0 (or None for no cap)")
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.latency_ms = latency_ms
        self.bandwidth_bits_per_second = bandwidth_bits_per_second
        self.redshift = redshift
        self._pacers = (_Pacer(bandwidth_bits_per_second), _Pacer(bandwidth_bits_per_second))
        self._lock = threading.Lock()
        self._connections: set[_Connection] = set()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._stopping = threading.Event()
        self._bytes_to_server = 0
        self._bytes_to_client = 0
        self._round_trips = 0
        self._statements = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> TcpProxy:
        """Listen on 127.0.0.1 on an ephemeral port and start accepting connections.

        Returns:
            The proxy itself.
        """
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.2)
        self._listener = listener
        self._stopping.clear()
        self._accepting = threading.Thread(target=self._accept_loop, name="tcp-proxy-accept", daemon=True)
        self._accepting.start()
        return self

    @property
    def port(self) -> int:
        """The port the proxy listens on (after `start`).

        Raises:
            RuntimeError: The proxy is not started.
        """
        if self._listener is None:
            raise RuntimeError("TcpProxy is not started")
        port: int = self._listener.getsockname()[1]
        return port

    def stop(self) -> None:
        """Close the listener and every connection, and join the proxy's threads (idempotent)."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.close()
        if self._accepting is not None:
            self._accepting.join(timeout=5)
            self._accepting = None
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        for connection in connections:
            for thread in connection.all_threads():
                if thread is not threading.current_thread():
                    thread.join(timeout=5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ counters

    @property
    def bytes_to_server(self) -> int:
        """Bytes written to the upstream server, all connections together."""
        return self._bytes_to_server

    @property
    def bytes_to_client(self) -> int:
        """Bytes written to the clients, all connections together."""
        return self._bytes_to_client

    @property
    def round_trips(self) -> int:
        """Request/response turns: client sends that follow server data (plus each connection's first send)."""
        return self._round_trips

    @property
    def statements(self) -> int:
        """PostgreSQL statements the clients ran: their Query ('Q') and Execute ('E') messages."""
        return self._statements

    def reset_counters(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self._bytes_to_server = self._bytes_to_client = self._round_trips = self._statements = 0

    def _count(self, *, to_server: int = 0, to_client: int = 0, round_trips: int = 0, statements: int = 0) -> None:
        with self._lock:
            self._bytes_to_server += to_server
            self._bytes_to_client += to_client
            self._round_trips += round_trips
            self._statements += statements

    # ------------------------------------------------------------ connections

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection((self.upstream_host, self.upstream_port), timeout=10)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, client, upstream)
            with self._lock:
                if self._stopping.is_set():
                    connection.close()
                    return
                self._connections.add(connection)
            connection.start()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)
