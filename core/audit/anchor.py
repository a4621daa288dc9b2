"""The outside anchor: the audit chain's head, appended to a file the database cannot reach.

A superuser who deletes the newest audit rows leaves a shorter chain that still verifies;
only a copy of the head kept elsewhere shows the loss. The worker appends one line per minute
when the head has moved (`core.audit.jobs`), and logs the same line, so the log store is a
second copy. `verify` reads the last line and checks the chain still reaches it.

The file is append-only by convention and only ever moves forward: a new head is written only
when the chain still holds the previously anchored row with the same hash, so an anchor can
never bless a trail that lost rows since the last one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from core.audit.model import Anchor
from core.errors import InfusionError

# Lines are under 150 bytes; the tail read covers many of them.
TAIL_BYTES = 4096


class AnchorFileError(InfusionError):
    """The anchor file cannot be read or does not end with an anchor.

    `message` never names the file (it may reach an API caller, and the server's paths are
    not theirs to see); `path` and `predicate` let the CLI and the log name it.
    """

    code = "audit_anchor_unreadable"
    status = 500

    def __init__(self, path: Path, predicate: str) -> None:
        super().__init__(f"the audit anchor file {predicate}")
        self.path = path
        # Completes "the outside anchor <file> …": "cannot be read (Permission denied)".
        self.predicate = predicate


def read_last(path: Path) -> Anchor | None:
    """The newest anchor in the file; None when the file does not exist (nothing anchored)."""
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - TAIL_BYTES))
            tail = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AnchorFileError(path, f"cannot be read ({exc.strerror})") from None
    lines = [line for line in tail.decode(errors="replace").splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return Anchor.parse(lines[-1])
    except ValueError:
        raise AnchorFileError(path, "does not end with an anchor line") from None


def has_entries(path: Path) -> bool:
    """Whether the file holds anything but blank lines (an anchor was ever written there)."""
    try:
        with path.open("rb") as file:
            return any(line.strip() for line in file)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise AnchorFileError(path, f"cannot be read ({exc.strerror})") from None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file (two workers never interleave check and write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def append(path: Path, anchor: Anchor) -> None:
    """Append one line and make it durable (call while holding `locked`)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (anchor.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


class AnchorMismatchError(InfusionError):
    code = "audit_anchor_mismatch"
    status = 500
