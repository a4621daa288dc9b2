"""The manifest of coldchain.loggers (core.manifest): what it brings to the product."""

from __future__ import annotations

from coldchain.loggers.jobs import JOBS
from core.manifest import Manifest

MANIFEST = Manifest(name="coldchain.loggers", jobs=JOBS)
