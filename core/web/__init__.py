"""The HTTP plumbing that JSON controllers and pages share, wherever they live (api/,
frontend/, or a context's own `api.py` and `pages.py`): who is calling (principal,
authentication, sessions), who may (guards), what input is accepted (inputs), how errors
answer (errors), page rendering and the menu (pages, navigation), form-post rules (security)
and the health check. It imports neither api nor frontend, and no context, so every edge can
import it without a circle.
"""
