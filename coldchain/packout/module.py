"""The manifest of coldchain.packout (core.manifest): what it brings to the product."""

from __future__ import annotations

from coldchain.packout.jobs import JOBS
from core.manifest import Manifest

MANIFEST = Manifest(name="coldchain.packout", jobs=JOBS)
