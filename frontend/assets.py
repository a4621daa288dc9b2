"""Static files: our own CSS and icons, and third-party scripts installed from the npm registry.

Nothing is loaded from a CDN: a pharmacy's staff console must keep working when a CDN is down
or blocked, and a script we did not pin cannot change under us. `npm ci` (run by
`scripts/bootstrap`) puts htmx under node_modules/; the app serves it at a stable URL and
refuses to start without it.

Asset URLs carry a short content hash (`/static/app.css?v=1a2b3c4d`), so browsers may cache
them for a long time and still see a new version the moment the file changes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Response, Router, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File

from core.errors import ConfigurationError

FRONTEND_DIR = Path(__file__).resolve().parent
PROJECT_DIR = FRONTEND_DIR.parent
STATIC_DIR = FRONTEND_DIR / "static"
NODE_MODULES = PROJECT_DIR / "node_modules"

STATIC_URL = "/static"
VENDOR_URL = f"{STATIC_URL}/vendor"

# A day; the ?v= content hash in every URL the templates write makes a change visible at once.
STATIC_CACHE = CacheControlHeader(public=True, max_age=86_400)


@dataclass(frozen=True)
class VendorFile:
    """One file of an npm package, served as /static/vendor/<name>."""

    name: str
    package: str
    path: Path


# What the pages load from node_modules. Add an entry here (and the package to package.json)
# to serve another one, e.g. an htmx extension.
VENDOR_FILES: dict[str, VendorFile] = {
    v.name: v
    for v in (
        VendorFile(
            name="htmx.min.js",
            package="htmx.org",
            path=NODE_MODULES / "htmx.org" / "dist" / "htmx.min.js",
        ),
        # The interactive API documentation at /schema (Swagger UI).
        *(
            VendorFile(
                name=name, package="swagger-ui-dist", path=NODE_MODULES / "swagger-ui-dist" / name
            )
            for name in (
                "swagger-ui-bundle.js",
                "swagger-ui-standalone-preset.js",
                "swagger-ui.css",
            )
        ),
    )
}


def check_vendor_files() -> None:
    """Fail at start-up, with the fix, when `npm ci` has not been run."""
    missing = [v for v in VENDOR_FILES.values() if not v.path.is_file()]
    if missing:
        names = ", ".join(f"{v.package} ({v.path})" for v in missing)
        raise ConfigurationError(
            f"front-end packages are missing: {names}. Run `npm ci` in {PROJECT_DIR} "
            "(or `make bootstrap`) to install them from package-lock.json."
        )


_hashes: dict[Path, tuple[float, str]] = {}


def _content_hash(path: Path) -> str:
    # Cached by modification time: one stat() per use, and an edited file gets a new URL
    # without restarting the server.
    mtime = path.stat().st_mtime
    cached = _hashes.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    _hashes[path] = (mtime, digest)
    return digest


def asset_url(name: str) -> str:
    """URL of a file under frontend/static/ (`css/app.css`) or of a vendor file (`vendor/x.js`)."""
    if name.startswith("vendor/"):
        vendor = VENDOR_FILES[name.removeprefix("vendor/")]
        return f"{VENDOR_URL}/{vendor.name}?v={_content_hash(vendor.path)}"
    path = static_path(name)
    if path is None:
        raise FileNotFoundError(f"no static file {name!r} under {STATIC_DIR}")
    return f"{STATIC_URL}/{name}?v={_content_hash(path)}"


@get(
    f"{VENDOR_URL}/{{name:str}}",
    operation_id="getVendorAsset",
    include_in_schema=False,
    opt={"public": True},
    cache_control=STATIC_CACHE,
    sync_to_thread=False,
)
def vendor_file(name: FromPath[str]) -> Response[Any]:
    vendor = VENDOR_FILES.get(name)
    if vendor is None:
        raise NotFoundException(f"No vendor file {name!r}.")
    return File(vendor.path, filename=vendor.name, content_disposition_type="inline")


def static_path(name: str) -> Path | None:
    """The file under frontend/static/ that `name` names, or None.

    None for anything that is not a plain file inside that folder: a folder, a path that
    climbs out (`../`), a NUL or other control character, a name the operating system refuses
    (a part longer than 255 bytes raises "File name too long"); each would otherwise surface
    as a 500.
    """
    if not name or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return None
    try:
        path = (STATIC_DIR / name.lstrip("/")).resolve()
        if not path.is_relative_to(STATIC_DIR) or not path.is_file():
            return None
    except (OSError, ValueError):
        return None
    return path


@get(
    f"{STATIC_URL}/{{name:path}}",
    operation_id="getStaticAsset",
    include_in_schema=False,
    opt={"public": True},
    cache_control=STATIC_CACHE,
    sync_to_thread=False,
)
def static_file(name: FromPath[str]) -> Response[Any]:
    path = static_path(name)
    if path is None:
        # The message names what was asked for, never where the files live on the server.
        raise NotFoundException("No such static file.")
    return File(path, filename=path.name, content_disposition_type="inline")


def static_files_router() -> Router:
    """/static/... from frontend/static and /static/vendor/... from node_modules."""
    check_vendor_files()
    return Router(path="/", route_handlers=[static_file, vendor_file], opt={"public": True})
