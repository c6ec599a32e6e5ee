"""TcpProxy on real loopback sockets: counting, link emulation, and Redshift mode against a real PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from urllib.parse import urlsplit

import psycopg
import pytest
import redshift_connector
from sqlalchemy import create_engine, text

from bot.sandbox.tcp_proxy import REDSHIFT_SERVER_VERSION, TcpProxy, _ServerRewriter

# ---------------------------------------------------------------- a byte-exact upstream: answers each read


class ReplyServer:
    """A loopback server that answers every chunk it reads with ``reply_size`` bytes (per connection)."""

    def __init__(self, reply_size: int) -> None:
        self.reply_size = reply_size
        self.received = 0
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                with self._lock:
                    self.received += len(data)
                conn.sendall(b"r" * self.reply_size)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def reply_server() -> Iterator[ReplyServer]:
    server = ReplyServer(reply_size=100)
    try:
        yield server
    finally:
        server.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return bytes(data)


def _ask(sock: socket.socket, request: bytes, reply_size: int) -> float:
    started = time.perf_counter()
    sock.sendall(request)
    _recv_exactly(sock, reply_size)
    return time.perf_counter() - started


# ---------------------------------------------------------------- counting


def test_counts_the_bytes_each_way_and_the_turns(reply_server: ReplyServer) -> None:
    with TcpProxy("127.0.0.1", reply_server.port) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
            for size in (10, 2000, 7):
                _ask(sock, b"q" * size, 100)
        assert proxy.bytes_to_server == 2017 == reply_server.received
        assert proxy.bytes_to_client == 300
        assert proxy.round_trips == 3

        proxy.reset_counters()
        assert (proxy.bytes_to_server, proxy.bytes_to_client, proxy.round_trips) == (0, 0, 0)


def test_counts_across_connections(reply_server: ReplyServer) -> None:
    with TcpProxy("127.0.0.1", reply_server.port) as proxy:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", proxy.port)) as sock:
                _ask(sock, b"hello", 100)
        assert (proxy.bytes_to_server, proxy.bytes_to_client, proxy.round_trips) == (15, 300, 3)


def test_stop_closes_open_connections(reply_server: ReplyServer) -> None:
    proxy = TcpProxy("127.0.0.1", reply_server.port).start()
    port = proxy.port
    with socket.create_connection(("127.0.0.1", port)) as sock:
        _ask(sock, b"x", 100)
        proxy.stop()
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(10) == b""
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    proxy.stop()  # idempotent


def test_port_needs_a_started_proxy() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = TcpProxy("127.0.0.1", 1).port


# ---------------------------------------------------------------- link emulation (lower bounds only)


def test_latency_is_added_to_every_round_trip(reply_server: ReplyServer) -> None:
    with (
        TcpProxy("127.0.0.1", reply_server.port, latency_ms=60) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        turns = [_ask(sock, b"ping", 100) for _ in range(3)]
    assert min(turns) >= 0.060


def test_bandwidth_cap_paces_the_transfer(reply_server: ReplyServer) -> None:
    reply_server.reply_size = 200_000  # 1.6 Mbit at 8 Mbit/s: at least 0.2 s on the wire
    with (
        TcpProxy("127.0.0.1", reply_server.port, bandwidth_bits_per_second=8_000_000) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        elapsed = _ask(sock, b"go", 200_000)
        assert proxy.bytes_to_client == 200_000
    assert elapsed >= 0.19


def test_server_stream_is_parsed_across_chunk_boundaries() -> None:
    def message(kind: bytes, body: bytes) -> bytes:
        return kind + (len(body) + 4).to_bytes(4, "big") + body

    stream = (
        message(b"R", b"\0\0\0\0")
        + message(b"S", b"server_version\x0015.8 (Debian 15.8-1)\0")
        + message(b"S", b"TimeZone\0UTC\0")
        + message(b"Z", b"I")
        + message(b"S", b"server_version\0after-startup\0")
    )
    rewriter = _ServerRewriter()
    out = b"".join(rewriter.feed(stream[i : i + 1]) for i in range(len(stream))) + rewriter.flush()
    assert message(b"S", b"server_version\0" + REDSHIFT_SERVER_VERSION.encode() + b"\0") in out
    assert b"15.8" not in out
    assert message(b"S", b"TimeZone\0UTC\0") in out
    assert out.endswith(message(b"S", b"server_version\0after-startup\0"))  # untouched after ReadyForQuery


# ---------------------------------------------------------------- PostgreSQL


def _address(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 5432, parts.path.lstrip("/")


@pytest.mark.postgres
def test_counts_postgresql_statements(postgres_url: str) -> None:
    host, port, database = _address(postgres_url)
    with TcpProxy(host, port) as proxy:
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}", autocommit=True) as conn:
            proxy.reset_counters()
            for value in range(7):  # psycopg prepares the statement after 5 runs: Execute without Parse
                assert conn.execute("SELECT %s::int", (value,)).fetchone() == (value,)
            conn.execute("SELECT 1; SELECT 2")  # one simple Query message
        assert proxy.statements == 8
        assert proxy.round_trips >= 8


@pytest.mark.postgres
def test_latency_on_a_postgresql_query(postgres_url: str) -> None:
    host, port, database = _address(postgres_url)
    with (
        TcpProxy(host, port, latency_ms=40) as proxy,
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}", autocommit=True) as conn,
    ):
        started = time.perf_counter()
        conn.execute("SELECT 1").fetchone()
        assert time.perf_counter() - started >= 0.040


def _redshift_connect(port: int, database: str) -> redshift_connector.Connection:
    return redshift_connector.connect(
        host="127.0.0.1", port=port, database=database, user="postgres", password="", ssl=False, timeout=10
    )


@pytest.mark.postgres
def test_redshift_connector_talks_to_postgresql_through_redshift_mode(postgres_url: str) -> None:
    host, port, database = _address(postgres_url)
    with TcpProxy(host, port, redshift=True) as proxy:
        conn = _redshift_connect(proxy.port, database)
        try:
            cursor = conn.cursor()
            cursor.execute(
                "SELECT md5(%s), CAST(%s AS NUMERIC(10,2)), CAST(%s AS DATE)", ("abc", "12.345", "2024-02-29")
            )
            assert list(cursor.fetchone()) == ["900150983cd24fb0d6963f7d28e17f72", Decimal("12.35"), date(2024, 2, 29)]
            cursor.execute(
                "SELECT g % 2, SUM(CAST(g AS NUMERIC(12,2))), COUNT(*) FROM generate_series(1, 10) g "
                "GROUP BY 1 ORDER BY 1"
            )
            assert [list(row) for row in cursor.fetchall()] == [[0, Decimal("30.00"), 5], [1, Decimal("25.00"), 5]]
        finally:
            conn.close()
        assert proxy.statements >= 2
        assert proxy.bytes_to_server > 0 and proxy.bytes_to_client > 0


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::DeprecationWarning:redshift_connector.*")
def test_redshift_mode_answers_the_ssl_request_itself(postgres_url: str) -> None:
    host, port, _ = _address(postgres_url)
    ssl_request = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
    with TcpProxy(host, port, redshift=True) as proxy, socket.create_connection(("127.0.0.1", proxy.port)) as sock:
        sock.settimeout(10)
        sock.sendall(ssl_request)
        assert sock.recv(1) == b"N"
        assert (proxy.bytes_to_server, proxy.bytes_to_client) == (0, 1)
        # the driver's own SSL path reads that "N" as a refusal: hence ssl=False in the connect calls
        with pytest.raises(redshift_connector.InterfaceError, match="refuses SSL"):
            redshift_connector.connect(host="127.0.0.1", port=proxy.port, user="postgres", password="", ssl=True)


@pytest.mark.postgres
def test_without_redshift_mode_postgresql_refuses_the_driver(postgres_url: str) -> None:
    host, port, database = _address(postgres_url)
    with (
        TcpProxy(host, port) as proxy,
        pytest.raises(redshift_connector.ProgrammingError, match="client_protocol_version"),
    ):
        _redshift_connect(proxy.port, database)


@pytest.mark.postgres
def test_sqlalchemy_redshift_dialect_through_redshift_mode(postgres_url: str) -> None:
    host, port, database = _address(postgres_url)
    with TcpProxy(host, port, redshift=True) as proxy:
        engine = create_engine(
            f"redshift+redshift_connector://postgres@127.0.0.1:{proxy.port}/{database}", connect_args={"ssl": False}
        )
        try:
            with engine.connect() as conn:
                row = conn.execute(
                    text("SELECT md5(:v), CAST(:n AS NUMERIC(10,2)), CAST(:d AS DATE)"),
                    {"v": "abc", "n": "1.5", "d": "2025-02-18"},
                ).one()
        finally:
            engine.dispose()
    assert tuple(row) == ("900150983cd24fb0d6963f7d28e17f72", Decimal("1.50"), date(2025, 2, 18))
