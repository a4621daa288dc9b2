"""`python -m bench` lists the benchmarks; `python -m bench NAME [options]` runs one.

Each run prints its table and ends with one line `NAME: key=value …` (the figures later tools
read). Exit codes: 0 after a sound run, 1 when the run went wrong (a server failed, responses
were errors), 2 for a usage or configuration problem (an unknown NAME, an unreachable server).
"""

from __future__ import annotations

import argparse
import signal
import sys

from rich.console import Console
from rich.markup import escape

from bench.registry import BENCHMARKS, BenchmarkError, final_line, find, load, names


def _listing() -> str:
    width = max(len(entry.name) for entry in BENCHMARKS)
    lines = ["usage: python -m bench NAME [--seconds S] [--quick] [options]", "", "benchmarks:"]
    lines += [f"  {entry.name:<{width}}  {entry.description}" for entry in BENCHMARKS]
    lines += ["", "`python -m bench NAME --help` shows the options of one benchmark."]
    return "\n".join(lines)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "list"):
        print(_listing())
        return 0
    name = args[0]
    entry = find(name)
    if entry is None:
        print(
            f"error: there is no benchmark named {name!r}; the benchmarks are: "
            f"{', '.join(names())}.",
            file=sys.stderr,
        )
        return 2
    module = load(entry)
    parser = argparse.ArgumentParser(prog=f"python -m bench {name}", description=entry.description)
    parser.add_argument(
        "--seconds",
        type=_positive,
        default=None,
        help=f"measurement duration per side (default {module.DEFAULT_SECONDS:g}; "
        f"{module.QUICK_SECONDS:g} with --quick)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run for tests and CI (rough figures)"
    )
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    options = parser.parse_args(args[1:])
    if options.seconds is None:
        options.seconds = module.QUICK_SECONDS if options.quick else module.DEFAULT_SECONDS

    console = Console(width=None if sys.stdout.isatty() else 140, highlight=False)
    # SIGTERM (a CI timeout) unwinds like Ctrl-C, so the servers a benchmark started are stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = module.run(options, console)
    except BenchmarkError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    for warning in outcome.warnings:
        console.print(f"[bold red]warning:[/] {escape(warning)}")
    sys.stdout.flush()
    print(final_line(name, outcome.figures), flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())
