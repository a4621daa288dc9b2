"""The benchmarks `python -m bench` knows: one module each, imported only when it runs.

Adding a benchmark is one module and one line in `BENCHMARKS`. The module provides:

    DEFAULT_SECONDS: float          measurement duration per side of a full run
    QUICK_SECONDS: float            the same for `--quick` (a smoke run in tests and CI)
    def add_arguments(parser): ...  optional: options of its own (argparse)
    def run(options, console) -> Outcome

`options` carries the common options (`seconds`, `quick`) and its own. `run` prints its table on
`console` (stdout) and progress on stderr, and returns the figures of the final line; the
harness prints that line (`NAME: key=value …`) last. A benchmark measures its baseline in the
same run, and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Protocol

from rich.console import Console


@dataclass(frozen=True)
class Entry:
    name: str
    module: str
    description: str


BENCHMARKS: tuple[Entry, ...] = (
    Entry(
        name="health",
        module="bench.health",
        description="GET /health requests/s and latency, against a bare Litestar endpoint "
        "returning the same JSON",
    ),
)


class BenchmarkError(Exception):
    """A benchmark could not run (not a slow result): one sentence and an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@dataclass
class Outcome:
    """The figures of the final line, in order; exit_code 1 when the figures are unsound."""

    figures: Mapping[str, float | int | str]
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)


class Benchmark(Protocol):
    DEFAULT_SECONDS: float
    QUICK_SECONDS: float

    def run(self, options: argparse.Namespace, console: Console) -> Outcome: ...


def names() -> list[str]:
    return [entry.name for entry in BENCHMARKS]


def find(name: str) -> Entry | None:
    return next((entry for entry in BENCHMARKS if entry.name == name), None)


def load(entry: Entry) -> ModuleType:
    return importlib.import_module(entry.module)


def format_value(value: float | int | str) -> str:
    """Figures for a machine-read line: no thousands separators, sensible precision."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:  # NaN: a figure that could not be measured
            return "nan"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:.0f}"
        if magnitude >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return str(value).replace(" ", "_")


def final_line(name: str, figures: Mapping[str, float | int | str]) -> str:
    return f"{name}: " + " ".join(f"{key}={format_value(value)}" for key, value in figures.items())
