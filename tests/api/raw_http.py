"""Raw HTTP/1.1 over a socket, for requests httpx will not send (half a request, bytes that
are not HTTP, a path with `..` left in) and for watching when the server closes (no tests
here)."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    # Seconds from the last byte sent to the first byte of the answer.
    seconds: float = 0.0
    all_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


def connect(base_url: str, *, timeout: float = 10) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket) -> RawResponse:
    """One response (its Content-Length body), read from `sock`."""
    started = time.monotonic()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole answer: {data!r}")
        data += chunk
    seconds = time.monotonic() - started
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    all_headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    headers = {name.lower(): value for name, value in all_headers}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return RawResponse(
        status=status,
        headers=headers,
        body=rest[:length],
        seconds=seconds,
        all_headers=[(n.lower(), v) for n, v in all_headers],
    )


def exchange(base_url: str, data: bytes, *, timeout: float = 10) -> RawResponse:
    """Send `data` on a new connection and read one answer."""
    with connect(base_url, timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def closed_by_server(sock: socket.socket) -> bool:
    """True when the server has closed `sock` (an empty read), False on a read timeout."""
    try:
        return sock.recv(65536) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
