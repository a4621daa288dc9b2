"""The interactive API documentation at /schema: Swagger UI, from this server only.

Litestar's Swagger page starts Swagger UI with an inline script (the whole OpenAPI document
inside it) and an inline style, which the pages' Content-Security-Policy forbids. This page
loads the same files, then a small script of ours that fetches the document from
/schema/openapi.json, so it runs under the same strict policy as every other page. Its files
come from node_modules through /static/vendor, never a CDN (see frontend/assets.py), so the
documentation works offline and cannot change under us.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import SwaggerRenderPlugin

from frontend.assets import asset_url


class LocalSwaggerUI(SwaggerRenderPlugin):
    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        title = escape(str(openapi_schema["info"]["title"]))
        spec_url = escape(self.get_openapi_json_route(request))
        return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  {self.favicon}
  <link rel="stylesheet" href="{escape(self.css_url)}">
  <link rel="stylesheet" href="{escape(asset_url("css/api-docs.css"))}">
  <script src="{escape(self.js_url)}"></script>
  <script src="{escape(self.standalone_preset_js_url)}"></script>
  <script src="{escape(asset_url("js/api-docs.js"))}"></script>
</head>
<body>
  <div id="swagger-container" data-spec-url="{spec_url}"></div>
</body>
</html>
""".encode()


def api_docs_ui() -> LocalSwaggerUI:
    return LocalSwaggerUI(
        path="/",
        js_url=asset_url("vendor/swagger-ui-bundle.js"),
        css_url=asset_url("vendor/swagger-ui.css"),
        standalone_preset_js_url=asset_url("vendor/swagger-ui-standalone-preset.js"),
        favicon=f'<link rel="icon" type="image/svg+xml" href="{asset_url("img/favicon.svg")}">',
    )
