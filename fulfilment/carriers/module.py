"""The manifest of fulfilment.carriers (core.manifest): what it brings to the product."""

from __future__ import annotations

from core.manifest import Manifest
from fulfilment.carriers.jobs import JOBS

MANIFEST = Manifest(name="fulfilment.carriers", jobs=JOBS)
