"""The manifest of fulfilment.orders (core.manifest): what it brings to the product."""

from __future__ import annotations

from core.manifest import Manifest
from fulfilment.orders.jobs import JOBS

MANIFEST = Manifest(name="fulfilment.orders", jobs=JOBS)
