"""A loopback stand-in for an RDS PostgreSQL endpoint with IAM authentication (tests only).

``verify_rds_token`` re-derives, by hand, the SigV4 presigned-URL signature that
``boto3.client("rds").generate_db_auth_token`` produces (botocore ``SigV4QueryAuth``).
``RdsIamProxy`` speaks the PostgreSQL v3 wire protocol like RDS does for IAM users (asks for a
cleartext password, which is the token), records every attempt and relays accepted sessions
to a real server that trusts the user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "rds-db"
MAX_EXPIRES = 900
CLOCK_SKEW = timedelta(minutes=5)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # presigned RDS tokens sign an empty body
_REQUIRED = ("Action", "DBUser", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date")
_REQUIRED += ("X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature")
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102
POLL = 0.2  # seconds between checks of the stop flag
T = TypeVar("T")


@dataclass(frozen=True)
class TokenCheck:
    """Outcome of ``verify_rds_token``; the facts are filled in as far as the token parsed."""

    ok: bool
    reason: str = ""
    access_key_id: str | None = None
    signed_at: datetime | None = None
    expires_at: datetime | None = None
    session_token_present: bool = False


def sigv4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4 signing key: HMAC chain over date (YYYYMMDD), region, service, ``aws4_request``."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _uri_encode(text: str) -> str:
    return quote(text.encode("utf-8"), safe="-_.~")


def verify_rds_token(
    token: str,
    *,
    host: str,
    port: int,
    user: str,
    region: str,
    secret_for: Callable[[str], str | None],
    now: datetime,
) -> TokenCheck:
    """Check an RDS IAM auth token (``host:port/?Action=connect&...``) the way RDS would."""
    facts: dict = {}

    def fail(reason: str) -> TokenCheck:
        return TokenCheck(False, reason, **facts)

    netloc, slash, rest = token.partition("/")
    path, _, query = f"/{rest}".partition("?")
    if not slash or "#" in token or "://" in token:
        return fail("malformed token: expected host:port/?query")
    tok_host, colon, tok_port = netloc.rpartition(":")
    if not colon or not re.fullmatch(r"[0-9]{1,5}", tok_port):
        return fail("malformed token: netloc is not host:port")
    params: dict[str, str] = {}
    try:
        for pair in query.split("&") if query else ():
            key, _, value = pair.partition("=")
            key, value = unquote(key, errors="strict"), unquote(value, errors="strict")
            if key in params:
                return fail(f"malformed token: duplicate parameter {key}")
            params[key] = value
    except UnicodeDecodeError:
        return fail("malformed token: bad percent-encoding")
    missing = [k for k in _REQUIRED if k not in params]
    if missing:
        return fail(f"malformed token: missing {', '.join(missing)}")
    facts["session_token_present"] = "X-Amz-Security-Token" in params
    cred = params["X-Amz-Credential"].split("/")
    if len(cred) == 5:
        facts["access_key_id"] = cred[0]
    amz_date = params["X-Amz-Date"]
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return fail("malformed token: bad X-Amz-Date")
    facts["signed_at"] = signed_at
    if not re.fullmatch(r"[0-9]{1,7}", params["X-Amz-Expires"]):
        return fail("malformed token: bad X-Amz-Expires")
    expires = int(params["X-Amz-Expires"])
    facts["expires_at"] = signed_at + timedelta(seconds=expires)

    if tok_host.lower() != host.lower():
        return fail(f"host mismatch: token is for {tok_host!r}, expected {host!r}")
    if tok_port != str(port):
        return fail(f"port mismatch: token is for {tok_port}, expected {port}")
    if path != "/":
        return fail(f"path mismatch: {path!r} is not '/'")
    if params["Action"] != "connect":
        return fail(f"action mismatch: {params['Action']!r} is not 'connect'")
    if params["DBUser"] != user:
        return fail(f"user mismatch: token is for {params['DBUser']!r}, expected {user!r}")
    if params["X-Amz-Algorithm"] != ALGORITHM:
        return fail(f"unsupported algorithm {params['X-Amz-Algorithm']!r}")
    if len(cred) != 5 or cred[4] != "aws4_request":
        return fail("bad credential scope")
    if cred[2] != region:
        return fail(f"region mismatch: token is for {cred[2]!r}, expected {region!r}")
    if cred[3] != SERVICE:
        return fail(f"service mismatch: {cred[3]!r} is not {SERVICE!r}")
    if cred[1] != amz_date[:8]:
        return fail("credential date does not match X-Amz-Date")
    if params["X-Amz-SignedHeaders"] != "host":
        return fail("signed headers must be exactly 'host'")
    if not 1 <= expires <= MAX_EXPIRES:
        return fail(f"expiry {expires}s is outside 1..{MAX_EXPIRES}s")
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if signed_at > now + CLOCK_SKEW:
        return fail("token not yet valid: signed in the future")
    if now > facts["expires_at"]:
        return fail("token expired")
    secret = secret_for(cred[0])
    if secret is None:
        return fail(f"unknown access key {cred[0]!r}")

    pairs = sorted(
        (_uri_encode(k), _uri_encode(v)) for k, v in params.items() if k != "X-Amz-Signature"
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    host_header = tok_host.lower() if tok_port == "443" else f"{tok_host.lower()}:{tok_port}"
    canonical_request = "\n".join(
        ["GET", "/", canonical_query, f"host:{host_header}", "", "host", EMPTY_SHA256]
    )
    scope = f"{cred[1]}/{region}/{SERVICE}/aws4_request"
    string_to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = sigv4_signing_key(secret, cred[1], region, SERVICE)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return fail("signature mismatch")
    return TokenCheck(True, "", **facts)


@dataclass(frozen=True)
class Attempt:
    """One authentication attempt seen by the proxy."""

    user: str
    database: str
    token: str
    check: TokenCheck
    tls: bool


class _Closed(Exception):
    """The peer went away, a deadline passed or the proxy is stopping."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _error_response(code: str, message: str) -> bytes:
    fields = (("S", "FATAL"), ("V", "FATAL"), ("C", code), ("M", message))
    body = b"".join(t.encode() + v.encode() + b"\0" for t, v in fields) + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


def _startup_params(packet: bytes) -> dict[str, str]:
    items = iter(packet[8:].split(b"\0"))
    out: dict[str, str] = {}
    for key in items:
        if not key:
            break
        out[key.decode("utf-8", "replace")] = next(items, b"").decode("utf-8", "replace")
    return out


class RdsIamProxy:
    """PostgreSQL endpoint on 127.0.0.1 that authenticates like RDS IAM, then relays upstream."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        region: str,
        secret_for: Callable[[str], str | None],
        clock: Callable[[], datetime] = _utcnow,
        ssl_context: ssl.SSLContext | None = None,
        *,
        expected_host: str | None = None,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.region, self.secret_for, self.clock = region, secret_for, clock
        self.ssl_context, self.expected_host = ssl_context, expected_host
        self.handshake_timeout = handshake_timeout
        self.host, self.port = "127.0.0.1", 0
        self._attempts: list[Attempt] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None

    @property
    def attempts(self) -> list[Attempt]:
        """A snapshot of the attempts so far, oldest first."""
        with self._lock:
            return list(self._attempts)

    def __enter__(self) -> RdsIamProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> RdsIamProxy:
        """Listen on a free loopback port and accept connections in a daemon thread."""
        if self._acceptor is not None:
            raise RuntimeError("proxy already started")
        self._stop.clear()
        listener = socket.create_server((self.host, 0))
        listener.settimeout(POLL)
        self.port = listener.getsockname()[1]
        self._acceptor = threading.Thread(
            target=self._accept_loop, args=(listener,), name=f"rds-proxy-{self.port}", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end every session and join all threads."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=10)
        with self._lock:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=10)
        self._acceptor = None

    def _accept_loop(self, listener: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:  # e.g. ECONNABORTED or EMFILE: keep serving, don't spin
                    time.sleep(POLL)
                    continue
                conn.setblocking(False)
                thread = threading.Thread(
                    target=self._serve, args=(conn,), name=f"rds-proxy-{self.port}-c", daemon=True
                )
                with self._lock:
                    self._threads = [t for t in self._threads if t.is_alive()]
                    self._threads.append(thread)
                thread.start()
        finally:
            listener.close()

    def _serve(self, conn: socket.socket) -> None:
        socks = [conn]  # everything opened for this session; all closed at the end
        deadline = time.monotonic() + self.handshake_timeout
        try:
            client, startup, tls = self._negotiate(conn, socks, deadline)
            params = _startup_params(startup)
            user = params.get("user", "")
            if not user:
                self._send(client, _error_response("28000", "no user name specified"), deadline)
                return
            self._send(client, b"R" + struct.pack("!ii", 8, 3), deadline)  # cleartext password
            kind, body = self._read_message(client, deadline)
            if kind != b"p":
                return
            token = body.split(b"\0", 1)[0].decode("utf-8", "replace")
            check = verify_rds_token(
                token,
                host=self.expected_host or self.host,
                port=self.port,
                user=user,
                region=self.region,
                secret_for=self.secret_for,
                now=self.clock(),
            )
            with self._lock:
                self._attempts.append(
                    Attempt(user, params.get("database") or user, token, check, tls)
                )
            if not check.ok:
                msg = f'PAM authentication failed for user "{user}"'
                self._send(client, _error_response("28P01", msg), deadline)
                return
            try:
                upstream = socket.create_connection(
                    (self.upstream_host, self.upstream_port), timeout=self.handshake_timeout
                )
            except OSError as exc:
                self._send(client, _error_response("08006", f"upstream: {exc}"), deadline)
                return
            socks.append(upstream)
            upstream.setblocking(False)
            self._send(upstream, startup, deadline)
            self._relay(client, upstream)
        except (_Closed, OSError, ValueError, struct.error):
            pass  # peer vanished, protocol garbage or stop(): just drop the session
        finally:
            for sock in socks:
                sock.close()

    def _negotiate(
        self, sock: socket.socket, socks: list[socket.socket], deadline: float
    ) -> tuple[socket.socket, bytes, bool]:
        """Answer SSL/GSSENC requests until the StartupMessage; returns (socket, packet, tls)."""
        tls = False
        for _ in range(4):
            head = self._recv_exact(sock, 8, deadline)
            length, code = struct.unpack("!ii", head)
            if not 8 <= length <= 10_000:
                raise _Closed
            packet = head + self._recv_exact(sock, length - 8, deadline)
            if code == SSL_REQUEST and length == 8 and not tls:
                self._send(sock, b"S" if self.ssl_context else b"N", deadline)
                if self.ssl_context is not None:
                    sock = self.ssl_context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                    socks.append(sock)
                    self._io(sock, sock.do_handshake, deadline)
                    tls = True
            elif code == GSSENC_REQUEST and length == 8 and not tls:
                self._send(sock, b"N", deadline)
            elif code >> 16 == 3:
                return sock, packet, tls
            else:  # CancelRequest or garbage
                raise _Closed
        raise _Closed

    def _wait(self, sock: socket.socket, event: int, deadline: float | None) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(sock, event)
            while not sel.select(POLL):
                if self._stop.is_set() or (deadline is not None and time.monotonic() > deadline):
                    raise _Closed

    def _io(self, sock: socket.socket, op: Callable[[], T], deadline: float | None) -> T:
        """Retry a non-blocking socket/TLS operation until it completes."""
        while True:
            if self._stop.is_set():
                raise _Closed
            try:
                return op()
            except (BlockingIOError, ssl.SSLWantReadError):
                self._wait(sock, selectors.EVENT_READ, deadline)
            except ssl.SSLWantWriteError:
                self._wait(sock, selectors.EVENT_WRITE, deadline)

    def _recv_exact(self, sock: socket.socket, n: int, deadline: float) -> bytes:
        buf = b""
        while len(buf) < n:
            data = self._io(sock, partial(sock.recv, n - len(buf)), deadline)
            if not data:
                raise _Closed
            buf += data
        return buf

    def _send(self, sock: socket.socket, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            view = view[self._io(sock, partial(sock.send, view), deadline) :]

    def _read_message(self, sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
        kind = self._recv_exact(sock, 1, deadline)
        (length,) = struct.unpack("!i", self._recv_exact(sock, 4, deadline))
        if not 4 <= length <= 100_000:
            raise _Closed
        return kind, self._recv_exact(sock, length - 4, deadline)

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways in this one thread until either side closes or stop()."""
        by_fd = {client.fileno(): client, upstream.fileno(): upstream}
        peer = {client.fileno(): upstream, upstream.fileno(): client}
        with selectors.DefaultSelector() as sel:
            sel.register(client, selectors.EVENT_READ)
            sel.register(upstream, selectors.EVENT_READ)
            while not self._stop.is_set():
                # TLS may hold decrypted bytes that select() cannot see
                buffered = isinstance(client, ssl.SSLSocket) and client.pending() > 0
                ready = {key.fd for key, _ in sel.select(0 if buffered else POLL)}
                if buffered:
                    ready.add(client.fileno())
                for fd in ready:
                    try:
                        data = by_fd[fd].recv(65536)
                    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    if not data:
                        return
                    self._send(peer[fd], data, time.monotonic() + 60)
