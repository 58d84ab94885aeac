"""The HTTP teacher: a black box behind a URL, queried so that it cannot be turned against the
server (no request forgery). Only hosts on an allow-list are asked (DFKD_TEACHER_HOSTS; by
default loopback, and nothing at all on a dashboard exposed beyond loopback); link-local and
cloud-metadata addresses are refused whatever the list says, checked on the addresses the
name resolves to, and the connection goes to the address that was checked (a second DNS
answer cannot swap it). Redirects are never followed, each request has one total deadline
(a server trickling a byte a second is cut off), answers have a size cap, and no error ever
repeats what the server answered.

DFKD_TEACHER_HOSTS: comma-separated host names, IP addresses or networks (CIDR), 'loopback'
(127.0.0.0/8, ::1, localhost), '*' (any address but the refused ones) or 'none'."""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import numpy as np

from ..errors import ConfigError, ModelError, QueryBudgetSpent

HOSTS_ENV = "DFKD_TEACHER_HOSTS"
EXPOSED_ENV = "DFKD_SERVER_EXPOSED"  # set to 1 by a dashboard that listens beyond loopback: no default hosts
MAX_RESPONSE_BYTES = 16 * 2**20  # an answer for 10 000 points is ~0.3 MB of JSON
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
# refused whatever DFKD_TEACHER_HOSTS says: link-local (cloud metadata at 169.254.169.254, fe80::/10),
# the other clouds' metadata addresses, and "this host" (0.0.0.0 reaches loopback on Linux)
REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128", "0.0.0.0/8", "::/128"))


def note_server_address(address: str | None) -> bool:
    """The dashboard says where it listens: beyond loopback ('0.0.0.0', a LAN address, unset,
    which is every interface), the default allow-list becomes empty for it and its workers
    (they inherit the environment). Returns whether the server is exposed."""
    text = (address or "").strip().strip("[]")
    try:
        exposed = not (_is_loopback_name(text) or _address(text).is_loopback)
    except ValueError:
        exposed = True  # a host name other than localhost, or nothing: every interface
    if exposed:
        os.environ[EXPOSED_ENV] = "1"
    else:
        os.environ.pop(EXPOSED_ENV, None)
    return exposed


def _is_loopback_name(name: str) -> bool:
    return name.lower().rstrip(".") in ("localhost", "localhost.localdomain") or name.lower().endswith(".localhost")


def allowed_entries() -> tuple[set[str], list, bool]:
    """(host names, networks, anything-goes) of the allow-list in force."""
    raw = os.environ.get(HOSTS_ENV)
    if raw is None or not raw.strip():
        exposed = os.environ.get(EXPOSED_ENV, "").strip() not in ("", "0")
        raw = "none" if exposed else "loopback"
    names, nets, anything = set(), [], False
    for item in (i.strip() for i in raw.split(",")):
        if not item or item.lower() == "none":
            continue
        if item == "*":
            anything = True
        elif item.lower() == "loopback":
            names.add("localhost")
            nets.extend(LOOPBACK)
        else:
            try:
                nets.append(ipaddress.ip_network(item.strip("[]"), strict=False))
            except ValueError:
                names.add(item.lower().rstrip("."))
    return names, nets, anything


def _address(text: str):
    ip = ipaddress.ip_address(text.split("%")[0])
    return ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip


def _refused(ip) -> bool:
    return any(ip.version == net.version and ip in net for net in REFUSED) or ip.is_multicast


def resolve_endpoint(url: str) -> tuple[str, int, str, str]:
    """(scheme, port, host name, the one IP address to connect to) of an allowed endpoint, or
    ModelError saying why it is refused. Never sends anything."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"The endpoint URL must start with http:// or https:// and name a host. Got {url[:80]!r} instead.")
    host = parts.hostname.lower().rstrip(".")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise ModelError(f"The HTTP teacher's host {host!r} cannot be resolved.") from None
    addresses = list(dict.fromkeys(_address(info[4][0]) for info in infos))
    bad = [a for a in addresses if _refused(a)]
    if bad:
        raise ModelError(f"The HTTP teacher's host {host!r} is refused: it is (or resolves to) {bad[0]}, a link-local or "
                         "cloud-metadata address, which is never queried.")
    names, nets, anything = allowed_entries()
    by_name = host in names or (_is_loopback_name(host) and "localhost" in names)
    if not (anything or by_name or all(any(a.version == n.version and a in n for n in nets) for a in addresses)):
        listed = os.environ.get(HOSTS_ENV, "").strip()
        why = (f"{HOSTS_ENV}={listed!r}" if listed else
               "by default only loopback, and no host at all on a dashboard reachable from other machines")
        raise ModelError(f"The HTTP teacher's host {host!r} is not on the allowed list ({why}). "
                         f"The server's operator can allow it with {HOSTS_ENV}.")
    return parts.scheme, port, host, str(addresses[0])


def check_endpoint(url: str) -> None:
    """ConfigError if the endpoint would be refused (for DistillConfig.validate)."""
    try:
        resolve_endpoint(url)
    except ModelError as exc:
        raise ConfigError(str(exc)) from None


class _PinnedHTTP(http.client.HTTPConnection):
    """http.client's connection to `ip`, whatever `host` resolves to now."""

    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self.ip, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self.ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _Deadline:
    """Shuts the connection's socket down when the request's total time is up, so no read
    (headers or body, however slowly the server trickles) outlives it."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.conn, self.end, self.expired = conn, time.monotonic() + seconds, False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def left(self) -> float:
        return self.end - time.monotonic()

    def __enter__(self) -> "_Deadline":
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()


class _Timeout(Exception):
    pass


class _Transient(Exception):
    """A failure worth another try (connection refused or reset, 5xx)."""


def post_json(url: str, payload: dict, timeout: float, max_bytes: int = MAX_RESPONSE_BYTES):
    """POST payload as JSON to an allowed endpoint and return the decoded answer, within
    `timeout` seconds in all. ModelError for a refusal, _Timeout, or _Transient."""
    scheme, port, host, ip = resolve_endpoint(url)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    body = json.dumps(payload).encode()
    cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
    conn = cls(host, port, ip, timeout)
    with _Deadline(conn, timeout) as deadline:
        try:
            conn.request("POST", target, body=body, headers={"Content-Type": "application/json", "Accept": "application/json",
                                                             "Host": parts.netloc.rsplit("@", 1)[-1]})
            response = conn.getresponse()
            status = response.status
            if 300 <= status < 400:
                raise ModelError(f"The HTTP teacher at {url} answered a redirect (HTTP {status}), which is never followed. "
                                 "Give the endpoint's final URL.")
            if status >= 500:
                raise _Transient(f"HTTP {status}")
            if status >= 400:
                raise ModelError(f"The HTTP teacher at {url} refused the request: HTTP {status}.")
            length = response.getheader("Content-Length")
            if length and length.strip().isdigit() and int(length) > max_bytes:
                raise ModelError(f"The HTTP teacher at {url} answered more than {max_bytes // 2**20} MiB, the cap on an answer.")
            chunks, total = [], 0
            while True:
                if deadline.left() <= 0:
                    raise _Timeout()
                chunk = response.read1(65536)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise ModelError(f"The HTTP teacher at {url} answered more than {max_bytes // 2**20} MiB, the cap on an answer.")
                chunks.append(chunk)
            if deadline.expired:
                raise _Timeout()
        except (ModelError, _Transient, _Timeout):
            raise
        except (TimeoutError, socket.timeout):
            raise _Timeout() from None
        except (OSError, http.client.HTTPException) as exc:
            if deadline.expired:
                raise _Timeout() from None
            raise _Transient(type(exc).__name__ if isinstance(exc, http.client.HTTPException) else (exc.strerror or str(exc))) from None
        finally:
            conn.close()
    try:
        return json.loads(b"".join(chunks).decode() or "null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ModelError(f"The HTTP teacher at {url} must answer JSON. Got something else.") from None


class HttpModel:
    """A black box at an allowed endpoint: POST {"inputs": [[...], ...]} as JSON, receive
    {"predictions": [...]} (or a bare list). A total deadline per request, retries on
    connection errors, timeouts and 5xx, and a budget on the number of points sent (0 = none)."""

    max_batch = 10_000  # points per request

    def __init__(self, url: str, *, timeout: float = 10.0, retries: int = 2, query_budget: int = 0) -> None:
        self.url, self.timeout, self.retries, self.query_budget = url, float(timeout), int(retries), int(query_budget)
        self.sent = 0
        resolve_endpoint(url)  # refused here, before any request

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        if self.query_budget and self.sent + len(x) > self.query_budget:
            raise QueryBudgetSpent(f"The HTTP teacher's query budget of {self.query_budget} points is spent "
                             f"({self.sent} sent, {len(x)} more asked for).")
        parts = [self._post(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        self.sent += len(x)
        return np.concatenate(parts) if parts else np.zeros(0)

    def _post(self, x: np.ndarray) -> np.ndarray:
        last = ""
        for attempt in range(self.retries + 1):
            try:
                payload = post_json(self.url, {"inputs": x.tolist()}, self.timeout)
                break
            except _Timeout:
                last = "no answer within the timeout"
            except _Transient as exc:
                last = str(exc)
            if attempt < self.retries:
                time.sleep(min(0.2 * 2**attempt, 2.0))
        else:
            raise ModelError(f"The HTTP teacher at {self.url} failed after {self.retries + 1} tries "
                             f"(timeout {self.timeout:g} s): {last}.")
        preds = payload.get("predictions") if isinstance(payload, dict) else payload
        try:
            out = np.asarray(preds, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            out = None
        if out is None or out.ndim == 0:  # the answer itself is never repeated in a message
            raise ModelError(f"The HTTP teacher at {self.url} must answer a list of numbers "
                             "(or {\"predictions\": [...]}). Got something else.")
        return out.reshape(out.shape[0], -1) if out.ndim == 2 else out
