"""The manifest of fulfilment.compounding (core.manifest): what it brings to the product."""

from __future__ import annotations

from core.manifest import Manifest
from fulfilment.compounding.jobs import JOBS

MANIFEST = Manifest(name="fulfilment.compounding", jobs=JOBS)
