"""Piccolo's entry point: the engine and the apps, one per bounded context (api/contexts.py).

The DSN comes from DATABASE_URL; `infusion` sets it after starting an embedded server, and
`core.db.configure()` can repoint the engine before its pool starts.
"""

import os

from piccolo.conf.apps import AppRegistry

from api.contexts import piccolo_apps
from core.db import make_engine

DB = make_engine(os.environ.get("DATABASE_URL") or None)

APPS = piccolo_apps()
APP_REGISTRY = AppRegistry(apps=APPS)
