"""The manifest of fulfilment.catalogue (core.manifest): what it brings to the product."""

from __future__ import annotations

from core.manifest import Manifest
from fulfilment.catalogue.jobs import JOBS

MANIFEST = Manifest(name="fulfilment.catalogue", jobs=JOBS)
