"""Piccolo's entry point: the engine and the apps, one per domain package.

The DSN comes from DATABASE_URL; `infusion` sets it after starting an embedded server, and
`core.db.configure()` can repoint the engine before its pool starts.
"""

import os

from piccolo.conf.apps import AppRegistry

from core.db import make_engine

DB = make_engine(os.environ.get("DATABASE_URL") or None)

APPS = [
    "core.piccolo_app",
    "fulfilment.piccolo_app",
    "coldchain.piccolo_app",
    "printing.piccolo_app",
]
APP_REGISTRY = AppRegistry(apps=APPS)
