"""The manifest of printing (core.manifest): what it brings to the product."""

from __future__ import annotations

from core.manifest import Manifest
from printing.jobs import JOBS

MANIFEST = Manifest(name="printing", jobs=JOBS)
