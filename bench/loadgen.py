"""A light HTTP/1.1 load generator: N keep-alive connections kept busy for a fixed time.

It runs in its own process, so its CPU is not the server's: `LoadGenerator` starts one
(`python -m bench.loadgen --serve`) for a whole benchmark and gives it one window at a time.
Each connection sends `GET PATH HTTP/1.1`, reads the head and exactly Content-Length bytes,
checks the status and the start of the body, and sends the next request at once (a closed
loop: the load is whatever the server takes with N requests in flight). A response with
another status or another body start, or a failed connection, counts as an error and never
as throughput. Connections are plain asyncio protocols (callbacks, no coroutine per request)
so the generator costs little CPU next to the server.

A window starts once every connection has answered one request plus a short settling time
and lasts `seconds`; only responses completed inside it count. Its result: counts, a latency
histogram in microseconds, and the CPU used in the window by the generator, by the server
process and by the whole machine (from /proc on Linux; None elsewhere), which tells which of
them was the limit.

    python -m bench.loadgen --port 8000 --path /health --seconds 5 --prefix '{"status":"ok"'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import select
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SETTLE_SECONDS = 0.2
CONNECT_TIMEOUT = 10.0


# ------------------------------------------------------------------ CPU accounting (/proc)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (its threads included), or None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # After the ")" that ends the command name: state is field 0, utime 11, stime 12.
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_cpu_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs, or None off Linux."""
    try:
        line = Path("/proc/stat").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in line.split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user time
    return total - idle, total


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------ the client


class LoadError(Exception):
    """The load could not be applied (the server does not answer): no figures."""


def _content_length(head: bytes) -> int | None:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        return None
    stop = lowered.find(b"\r\n", at + 2)
    return int(head[at + 17 : stop if stop >= 0 else None])  # int() strips the spaces


class _Run:
    """The shared state of one run: the connections, the counts, the measuring flag."""

    def __init__(self, host: str, port: int, request: bytes, status: int, prefix: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.status = str(status).encode()
        self.prefix = prefix
        self.measuring = False
        self.stopping = False
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.latency_us: dict[int, int] = {}
        self.answered = 0  # connections that have had their first answer
        self.reconnects = 0  # answers after which the server closed the connection
        self.clients: set[_Client] = set()
        self.pending: set[asyncio.Task[None]] = set()

    def error(self, kind: str) -> None:
        if self.measuring:
            self.errors[kind] += 1

    def connect_soon(self, delay: float = 0.0) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(delay))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _connect(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.stopping:
            return
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Client(self), self.host, self.port),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError):
            self.error("connect")
            self.connect_soon(0.05)

    def stop(self) -> None:
        self.stopping = True
        for task in self.pending:
            task.cancel()
        for client in list(self.clients):
            client.close()


class _Client(asyncio.Protocol):
    """One keep-alive connection with one request in flight (callbacks, no coroutine per
    request: the generator stays light next to the server it measures)."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.started = 0.0
        self.answered = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.clients.add(self)
        self.send()

    def send(self) -> None:
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(self.run.request)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end])
        try:
            length = _content_length(head)
        except ValueError:
            length = None
        run = self.run
        if length is None:
            # No Content-Length (chunked or close-delimited): not what /health sends.
            run.error("no content-length")
            self.close()
            return
        total = end + 4 + length
        if len(buffer) < total:
            return
        elapsed = time.perf_counter() - self.started
        body_ok = buffer.startswith(run.prefix, end + 4)
        del buffer[:total]
        if run.measuring:
            if head[9:12] != run.status:
                run.errors[f"status {head[9:12].decode(errors='replace')}"] += 1
            elif not body_ok:
                run.errors["unexpected body"] += 1
            else:
                run.ok += 1
                us = int(elapsed * 1_000_000)
                run.latency_us[us] = run.latency_us.get(us, 0) + 1
        elif not self.answered:
            self.answered = True
            run.answered += 1
        if run.stopping:
            self.close()
            return
        if head.startswith(b"HTTP/1.0") or b"\r\nconnection: close" in head.lower():
            # The server ends the connection after this answer: not an error, a reconnect
            # (which costs a TCP handshake per request: keep-alive is part of the measure).
            self.closing = True
            if run.measuring:
                run.reconnects += 1
            self.close()
            return
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.clients.discard(self)
        if not self.run.stopping:
            if not self.closing:
                self.run.error("connection")
            self.run.connect_soon()


async def generate(
    *,
    host: str,
    port: int,
    path: str,
    connections: int,
    seconds: float,
    status: int,
    prefix: bytes,
    server_pid: int | None,
) -> dict[str, object]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: infusion-bench\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    run = _Run(host, port, request, status, prefix)
    for _ in range(connections):
        run.connect_soon()
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while run.answered < connections:
        if time.monotonic() > deadline:
            run.stop()
            raise LoadError(
                f"only {run.answered} of {connections} connections answered within "
                f"{CONNECT_TIMEOUT:g} s"
            )
        await asyncio.sleep(0.005)
    await asyncio.sleep(SETTLE_SECONDS)

    cpu_self0 = self_cpu_seconds()
    cpu_server0 = process_cpu_seconds(server_pid) if server_pid else None
    machine0 = machine_cpu_ticks()
    started = time.perf_counter()
    run.measuring = True
    await asyncio.sleep(seconds)
    run.measuring = False
    window = time.perf_counter() - started
    cpu_self1 = self_cpu_seconds()
    cpu_server1 = process_cpu_seconds(server_pid) if server_pid else None
    machine1 = machine_cpu_ticks()
    run.stop()
    await asyncio.sleep(0)  # let the transports close

    machine_busy = None
    if machine0 and machine1 and machine1[1] > machine0[1]:
        # Fraction of all CPUs busy, times the CPU count: "cores busy".
        machine_busy = (
            (machine1[0] - machine0[0]) / (machine1[1] - machine0[1]) * (os.cpu_count() or 1)
        )
    return {
        "ok": run.ok,
        "errors": dict(run.errors),
        "reconnects": run.reconnects,
        "seconds": window,
        "latency_us": {str(k): v for k, v in run.latency_us.items()},
        "loadgen_cpu": (cpu_self1 - cpu_self0) / window,
        "server_cpu": (
            (cpu_server1 - cpu_server0) / window
            if cpu_server0 is not None and cpu_server1 is not None
            else None
        ),
        "machine_cores_busy": machine_busy,
    }


# ------------------------------------------------------------------ results, for the parent


@dataclass(frozen=True)
class Window:
    """One measured window of one side."""

    ok: int
    errors: dict[str, int]
    reconnects: int
    seconds: float
    latency_us: dict[int, int]
    loadgen_cpu: float | None
    server_cpu: float | None
    machine_cores_busy: float | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Window:
        return cls(
            ok=int(raw["ok"]),
            errors={str(k): int(v) for k, v in raw["errors"].items()},
            reconnects=int(raw.get("reconnects", 0)),
            seconds=float(raw["seconds"]),
            latency_us={int(k): int(v) for k, v in raw["latency_us"].items()},
            loadgen_cpu=raw.get("loadgen_cpu"),
            server_cpu=raw.get("server_cpu"),
            machine_cores_busy=raw.get("machine_cores_busy"),
        )

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else float("nan")

    @property
    def server_cpu_ms_per_request(self) -> float:
        """Server CPU per answered request: unlike req/s, barely moved by other work that
        takes CPU time away from the server."""
        if self.server_cpu is None or not self.ok:
            return float("nan")
        return self.server_cpu * self.seconds / self.ok * 1000

    def percentile_ms(self, fraction: float) -> float:
        """The latency below which `fraction` of the counted responses completed."""
        total = sum(self.latency_us.values())
        if not total:
            return float("nan")
        rank = fraction * total
        seen = 0
        for us in sorted(self.latency_us):
            seen += self.latency_us[us]
            if seen >= rank:
                return us / 1000
        return max(self.latency_us) / 1000


def median(values: list[float]) -> float:
    ordered = sorted(v for v in values if v == v)
    if not ordered:
        return float("nan")
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@dataclass
class SideResult:
    """The windows of one side. Figures are medians over the windows: a window disturbed by
    other work on a shared machine moves them less than it would move a pooled figure."""

    windows: list[Window] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return median([w.rps for w in self.windows])

    def percentile_ms(self, fraction: float) -> float:
        return median([w.percentile_ms(fraction) for w in self.windows])

    @property
    def server_cpu_ms_per_request(self) -> float:
        return median([w.server_cpu_ms_per_request for w in self.windows])

    @property
    def spread(self) -> float:
        """Largest over smallest req/s of the windows (1.0 = steady; 1.0 for one window)."""
        rates = [w.rps for w in self.windows]
        if len(rates) < 2 or min(rates) <= 0:
            return 1.0
        return max(rates) / min(rates)

    @property
    def errors(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for window in self.windows:
            total.update(window.errors)
        return total

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def reconnects(self) -> int:
        return sum(w.reconnects for w in self.windows)

    def cpu(self, name: str) -> float | None:
        return mean([getattr(w, name) for w in self.windows])


class LoadGenerator:
    """One generator process for a whole benchmark, given one window to run at a time."""

    def __init__(self, cpus: set[int] | None = None) -> None:
        command = [sys.executable, "-m", "bench.loadgen", "--serve"]
        if cpus:
            command += ["--cpus", ",".join(str(c) for c in sorted(cpus))]
        self.process = subprocess.Popen(  # noqa: S603 (our own module)
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def run(
        self,
        *,
        port: int,
        seconds: float,
        connections: int,
        prefix: bytes,
        path: str = "/health",
        host: str = "127.0.0.1",
        status: int = 200,
        server_pid: int | None = None,
    ) -> Window:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        command = {
            "host": host,
            "port": port,
            "path": path,
            "connections": connections,
            "seconds": seconds,
            "status": status,
            "prefix": prefix.decode(),
            "server_pid": server_pid,
        }
        try:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise LoadError(f"the load generator exited ({self.process.poll()})") from None
        ready, _, _ = select.select([self.process.stdout], [], [], seconds + CONNECT_TIMEOUT + 30)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise LoadError("the load generator did not answer")
        raw = json.loads(line)
        if "error" in raw:
            raise LoadError(raw["error"])
        return Window.from_json(raw)

    def close(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # end of commands: the generator exits
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _serve_commands() -> None:
    """`--serve`: one JSON command a line on stdin, one JSON result a line on stdout."""
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            result = asyncio.run(
                generate(
                    host=command["host"],
                    port=command["port"],
                    path=command["path"],
                    connections=command["connections"],
                    seconds=command["seconds"],
                    status=command["status"],
                    prefix=command["prefix"].encode(),
                    server_pid=command.get("server_pid"),
                )
            )
        except LoadError as exc:
            result = {"error": str(exc)}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def main() -> None:
    try:
        _main()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group: leave quietly
        sys.exit(130)


def _main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description="One measured window against --port, or --serve: windows given on stdin.",
    )
    parser.add_argument("--serve", action="store_true", help="read JSON commands on stdin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--path", default="/")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--prefix", default="", help="the bytes every body must start with")
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument("--cpus", default=None, help="pin this process to these CPUs (0,1)")
    options = parser.parse_args()
    if options.cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in options.cpus.split(",")})
    if options.serve:
        _serve_commands()
        return
    if options.port is None:
        parser.error("--port is required without --serve")
    try:
        result = asyncio.run(
            generate(
                host=options.host,
                port=options.port,
                path=options.path,
                connections=options.connections,
                seconds=options.seconds,
                status=options.status,
                prefix=options.prefix.encode(),
                server_pid=options.server_pid,
            )
        )
    except LoadError as exc:
        sys.exit(f"error: {exc}")
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
