"""`python -m bench health`: GET /health requests/s and latency, real app against a bare one.

Sides, each one uvicorn process on a free loopback port, all started by `infusion serve`:

  app    the product (`python -m api serve`) against a dedicated database (bench/servers.py),
         INFUSION_LOG_LEVEL=WARNING so that request logging does not dominate;
  bare   the baseline, bench/bare_health.py: `infusion serve` with the app factory swapped for
         one Litestar route returning the same JSON shape with constant values, same level;
  io     the second baseline, bench/bare_health.py --io: the same bare route doing the I/O the
         product's check does (SELECT 1 on a default asyncpg pool, a Redis PING), same level;
  info   the product again in production settings: INFUSION_LOG_LEVEL=INFO (the default),
         which logs every request, INFUSION_LOG_FORMAT=json (unless set otherwise), to a file;
         skipped by --quick unless --info.

A load generator in its own process (bench/loadgen.py) keeps N keep-alive connections busy.
After a warm-up of every side, the sides are measured in alternation, the order reversed every
other round (app bare info, info bare app, …) so slow drift falls on all sides alike; each
side's req/s, p50 and p99 are medians over its rounds. Every response must be 200 and start
with the expected bytes, or it counts as an error (and the run exits 1).

Final line: `health: rps=… baseline_rps=… ratio=… io_baseline_rps=… io_ratio=… p99_ms=…
baseline_p99_ms=…` (the issues' keys), then `io_p99_ms=… errors=… cpu_ms_per_req=…
baseline_cpu_ms_per_req=… cpu_ratio=… io_cpu_ms_per_req=… io_cpu_ratio=…` and, with the INFO
side, `info_rps=… info_ratio=…`. docs/benchmarks.md explains each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.loadgen import LoadError, LoadGenerator, SideResult, Window, machine_cpu_ticks
from bench.registry import BenchmarkError, Outcome
from bench.servers import Served, bench_backends, get, migrate, serve, wait_ready

DEFAULT_SECONDS = 10.0
QUICK_SECONDS = 1.0
DEFAULT_ROUNDS = 5
QUICK_ROUNDS = 2
DEFAULT_WARMUP = 1.5
QUICK_WARMUP = 0.0  # each window's settling time is warm-up enough for a smoke run
DEFAULT_CONNECTIONS = 16
# Cores busy before the run above which the report warns that the machine is shared.
BUSY_MACHINE_CORES = 0.25
# Largest/smallest round req/s of a side above which the report warns the machine was unsteady.
UNSTEADY_SPREAD = 1.3
EXPECTED_PREFIX = b'{"status":"ok","database":{"ok":true,'
# bench/bare_health.py's MARKER_PATH (not imported: that would import Litestar here).
MARKER_PATH = "/bench-bare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--connections",
        type=int,
        default=DEFAULT_CONNECTIONS,
        help=f"concurrent keep-alive connections (default {DEFAULT_CONNECTIONS})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"alternations; --seconds is split over them (default {DEFAULT_ROUNDS}; "
        f"{QUICK_ROUNDS} with --quick)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help=f"warm-up seconds per side, not counted (default {DEFAULT_WARMUP:g}; "
        f"{QUICK_WARMUP:g} with --quick)",
    )
    parser.add_argument(
        "--info",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure the product logging every request, as in production "
        "(INFUSION_LOG_LEVEL=INFO, JSON logs; default on, off with --quick)",
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="pin each server to CPU 1 and the load generator to CPU 0 (Linux)",
    )


@dataclass
class Side:
    key: str
    label: str
    served: Served
    result: SideResult = field(default_factory=SideResult)


def _shape(value: Any) -> Any:
    """The JSON structure without the values: keys in order and value types."""
    if isinstance(value, dict):
        return [(k, _shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return ["list"]
    if value is None:
        return "null-or-str"
    if isinstance(value, str):
        return "null-or-str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _background_cores(seconds: float) -> float | None:
    """Cores busy while nothing of ours is loaded: other work on the machine."""
    before = machine_cpu_ticks()
    time.sleep(seconds)
    after = machine_cpu_ticks()
    if not before or not after or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)


def _lines_per_request(side: Side, requests: int = 20) -> float:
    """Log lines the server writes per /health request (sequential requests, counted)."""
    before = side.served.log_lines()
    for _ in range(requests):
        get(side.served.url + "/health")
    time.sleep(0.1)
    return (side.served.log_lines() - before) / requests


def run(options: argparse.Namespace, console: Console) -> Outcome:
    progress = Console(stderr=True, highlight=False)
    rounds = options.rounds or (QUICK_ROUNDS if options.quick else DEFAULT_ROUNDS)
    warmup = (
        options.warmup
        if options.warmup is not None
        else (QUICK_WARMUP if options.quick else DEFAULT_WARMUP)
    )
    with_info = options.info if options.info is not None else not options.quick
    if rounds < 1 or options.connections < 1:
        raise BenchmarkError("--rounds and --connections must be at least 1", exit_code=2)
    per_round = options.seconds / rounds
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cpu_count = len(cpus) or os.cpu_count() or 1
    pin = bool(options.pin and len(cpus) >= 2)
    server_cpus = {cpus[1]} if pin else None
    loadgen_cpus = {cpus[0]} if pin else None
    warnings: list[str] = []

    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-health-")))
        sides: dict[str, Side] = {}

        def start(key: str, label: str, command: list[str], env: dict[str, str]) -> None:
            served = serve(key, command, env, logs / f"{key}.log")
            stack.callback(served.stop)
            sides[key] = Side(key, label, served)

        progress.print("[dim]starting the servers and preparing the benchmark database…[/]")
        backends = stack.enter_context(bench_backends())
        env = {
            **os.environ,
            "DATABASE_URL": backends.database_url,
            "REDIS_URL": backends.redis_url,
            "INFUSION_DATA_DIR": str(logs / "data"),
        }
        quiet = {**env, "INFUSION_LOG_LEVEL": "WARNING"}
        # Both sides are served by `infusion serve` (bench/bare_health.py swaps the app
        # factory). The baseline uses no database, so it starts while the migrations run.
        bare_command = [sys.executable, "-m", "bench.bare_health", "--host", "127.0.0.1"]
        start("bare", "bare Litestar", [*bare_command, "--port", "{port}"], quiet)
        migrate(backends)
        # SELECT 1 needs no table, but the database must exist and answer: after migrate().
        start("io", "bare + SELECT 1/PING", [*bare_command, "--io", "--port", "{port}"], quiet)
        app_command = [sys.executable, "-m", "api", "serve", "--host", "127.0.0.1"]
        start("app", "app (WARNING)", [*app_command, "--port", "{port}"], quiet)
        if with_info:
            # As in production (docs/operations.md): INFO, one JSON object a line.
            log_format = os.environ.get("INFUSION_LOG_FORMAT") or "json"
            info_env = {**env, "INFUSION_LOG_LEVEL": "INFO", "INFUSION_LOG_FORMAT": log_format}
            label = f"app (INFO, {log_format})"
            start("info", label, [*app_command, "--port", "{port}"], info_env)
        order = [sides[key] for key in ("app", "bare", "io", "info") if key in sides]

        first: dict[str, bytes] = {}
        for side in order:
            status, body = wait_ready(side.served)
            if status != 200 or not body.startswith(EXPECTED_PREFIX):
                raise BenchmarkError(
                    f"{side.label} answers /health with {status} {body[:200]!r}; "
                    "the benchmark needs a healthy app"
                )
            first[side.key] = body
        for key in ("bare", "io"):
            if get(sides[key].served.url + MARKER_PATH)[0] != 204:
                raise BenchmarkError(
                    f"the {sides[key].label} server is not bench/bare_health.py's app (no 204 "
                    f"on {MARKER_PATH}): `infusion serve` no longer takes its app from "
                    "api.app.create_app when it runs; update bench/bare_health.py"
                )
            if _shape(json.loads(first["app"])) != _shape(json.loads(first[key])):
                warnings.append(
                    f"the {sides[key].label} endpoint's JSON no longer has the shape of the "
                    f"app's /health; update bench/bare_health.py (app: {first['app'][:160]!r})"
                )
        probes = 5 if options.quick else 20
        lines = {side.key: _lines_per_request(side, probes) for side in order}
        if server_cpus:
            for side in order:
                os.sched_setaffinity(side.served.pid, server_cpus)

        generator = stack.enter_context(LoadGenerator(cpus=loadgen_cpus))

        def load(side: Side, seconds: float) -> Window:
            try:
                return generator.run(
                    port=side.served.port,
                    seconds=seconds,
                    connections=options.connections,
                    prefix=EXPECTED_PREFIX,
                    server_pid=side.served.pid,
                )
            except LoadError as exc:
                raise BenchmarkError(f"{side.label}: {exc}\n{side.served.log_tail()}") from None

        background = _background_cores(0.2 if options.quick else 1.0)
        if background is not None and background > BUSY_MACHINE_CORES:
            warnings.append(
                f"{background:.2f} of {cpu_count} cores were busy with other work before the "
                "run (our servers idle): the machine is shared, the figures are low and noisy"
            )
        if warmup > 0:
            progress.print(f"[dim]warming up each side for {warmup:g} s…[/]")
            for side in order:
                load(side, warmup)
        for number in range(rounds):
            this_round = order if number % 2 == 0 else order[::-1]
            progress.print(
                f"[dim]round {number + 1}/{rounds}: "
                f"{' '.join(s.key for s in this_round)}, {per_round:.1f} s each…[/]"
            )
            for side in this_round:
                side.result.windows.append(load(side, per_round))
        for side in order:
            if not side.served.alive():
                raise BenchmarkError(
                    f"{side.label} exited during the benchmark:\n{side.served.log_tail()}"
                )

    app, bare, io = sides["app"].result, sides["bare"].result, sides["io"].result
    info = sides["info"].result if "info" in sides else None

    table = Table(
        title=f"GET /health: {options.connections} keep-alive connections, "
        f"{options.seconds:g} s per side in {rounds} rounds, {cpu_count} CPUs"
        + (" (servers pinned to one CPU, load generator to the other)" if pin else ""),
        title_justify="left",
    )
    for column, justify in (
        ("side", "left"),
        ("req/s", "right"),
        ("per round", "right"),
        ("p50 ms", "right"),
        ("p99 ms", "right"),
        ("errors", "right"),
        ("log/req", "right"),
        ("CPU ms/req", "right"),
        ("server CPU", "right"),
        ("loadgen CPU", "right"),
        ("all CPUs", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for side in order:
        r = side.result
        table.add_row(
            side.label,
            f"{r.rps:,.0f}",
            " ".join(f"{w.rps:.0f}" for w in r.windows),
            f"{r.percentile_ms(0.50):.2f}",
            f"{r.percentile_ms(0.99):.2f}",
            str(r.error_count),
            f"{lines[side.key]:.1f}",
            f"{r.server_cpu_ms_per_request:.2f}",
            _cores(r.cpu("server_cpu")),
            _cores(r.cpu("loadgen_cpu")),
            _cores(r.cpu("machine_cores_busy")),
        )
    console.print(table)

    ratio = app.rps / bare.rps if bare.rps else float("nan")
    cpu_ratio = (
        bare.server_cpu_ms_per_request / app.server_cpu_ms_per_request
        if app.server_cpu_ms_per_request
        else float("nan")
    )
    io_ratio = app.rps / io.rps if io.rps else float("nan")
    io_cpu_ratio = (
        io.server_cpu_ms_per_request / app.server_cpu_ms_per_request
        if app.server_cpu_ms_per_request
        else float("nan")
    )
    info_ratio = info.rps / bare.rps if info and bare.rps else float("nan")
    notes = [
        f"ratio = app req/s / bare req/s = {ratio:.3f}. 'bare Litestar' is one route answering "
        "the same JSON with constant values, served by the same `infusion serve` (same uvicorn "
        "options, one process each); the difference is what the product adds: its middleware, "
        "the SELECT 1 and the Redis PING.",
        f"io_ratio = app req/s / '{sides['io'].label}' req/s = {io_ratio:.3f}. That side is "
        "the same bare route doing the product's I/O and nothing else: SELECT 1 on an asyncpg "
        "pool with asyncpg's defaults (reset on release) and the product's size, then PING "
        "through the product's Redis client; the difference is the product's own Python "
        "(middleware, Piccolo, the check's timeouts, logging calls).",
        "Both are measured with INFUSION_LOG_LEVEL=WARNING so logging does not dominate. In "
        "production settings (INFO, the product's default level) the app logs every request: "
        + (
            f"'{sides['info'].label}' runs that, logging to a file, at {info_ratio:.3f} of the "
            "baseline."
            if info
            else "that side was skipped (--no-info, or --quick without --info)."
        ),
        "req/s, p50 and p99 are medians over the rounds ('per round' lists each round's "
        "req/s), so a round disturbed by other work on the machine moves them little. Latency "
        "is what the client saw, queueing included: with N requests always in flight, "
        "p50 ≈ N / req/s. log/req: lines the server logged per request (counted before the run).",
        "CPU ms/req: the server process's CPU time per request (median over the rounds). It "
        "counts the work a request costs rather than how much CPU the server got, so other "
        f"work on the machine moves it less than req/s; cpu_ratio = bare/app = {cpu_ratio:.3f}. "
        "The other CPU columns are in cores "
        "(1.00 = one core busy) over the windows: 'server' the uvicorn process, 'loadgen' the "
        f"load generator (one Python asyncio process), 'all CPUs' the machine out of {cpu_count} "
        "(PostgreSQL, Redis and other work included). A server near 1.00 is the limit, as "
        "intended; below that, something else had the CPUs.",
        f"Backends: {backends.where}; Redis {backends.redis_url.split('@')[-1]}. "
        f"Other work on the machine just before the run: {_cores(background)} cores busy.",
    ]
    for note in notes:
        console.print(f"[dim]- {escape(note)}[/]")

    spreads = {side.label: side.result.spread for side in order}
    label, spread = max(spreads.items(), key=lambda item: item[1])
    if spread > UNSTEADY_SPREAD:
        warnings.append(
            f"the rounds of {label} differ by {spread:.1f}x in req/s: the machine was not "
            "steady during the run (other work came and went); compare several runs, and "
            "prefer cpu_ratio to ratio"
        )
    for side in order:
        if side.result.reconnects:
            warnings.append(
                f"{side.label}: the server closed {side.result.reconnects} connections after an "
                "answer (no keep-alive), so its figures include TCP handshakes"
            )
    errors = sum(side.result.error_count for side in order)
    if errors:
        kinds: dict[str, int] = {}
        for side in order:
            for kind, count in side.result.errors.items():
                kinds[f"{side.key}: {kind}"] = count
        warnings.append(f"{errors} responses were errors ({kinds}): the figures are not sound")
    figures: dict[str, float | int | str] = {
        "rps": app.rps,
        "baseline_rps": bare.rps,
        "ratio": ratio,
        "io_baseline_rps": io.rps,
        "io_ratio": io_ratio,
        "p99_ms": app.percentile_ms(0.99),
        "baseline_p99_ms": bare.percentile_ms(0.99),
        "io_p99_ms": io.percentile_ms(0.99),
        "errors": errors,
        "cpu_ms_per_req": app.server_cpu_ms_per_request,
        "baseline_cpu_ms_per_req": bare.server_cpu_ms_per_request,
        "cpu_ratio": cpu_ratio,
        "io_cpu_ms_per_req": io.server_cpu_ms_per_request,
        "io_cpu_ratio": io_cpu_ratio,
    }
    if info:
        figures["info_rps"] = info.rps
        figures["info_ratio"] = info_ratio
    return Outcome(figures=figures, exit_code=1 if errors else 0, warnings=warnings)
