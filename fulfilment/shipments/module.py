"""The manifest of fulfilment.shipments (core.manifest): what it brings to the product."""

from __future__ import annotations

from core.manifest import Manifest
from fulfilment.shipments.jobs import JOBS

MANIFEST = Manifest(name="fulfilment.shipments", jobs=JOBS)
