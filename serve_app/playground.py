"""The playground at ``GET /``: the SSE contract's reference client, as static files.

Plain ES modules and a stylesheet in ``serve_app/static/`` (no build step, nothing
fetched from a CDN): ``index.html`` is served at ``/``, the rest under ``/playground/``.
Only the files listed here are served, so a path can never reach outside the folder.
"""

from __future__ import annotations

from importlib import resources

from serve_app.errors import NotFoundError

MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "sse.js": "text/javascript; charset=utf-8",
    "preview.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' https: data:; frame-src 'self' about:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The page loads only its own files; the preview frame is a sandboxed ``srcdoc``."""


def asset(name: str) -> tuple[bytes, str]:
    """A playground file's bytes and media type; ``NotFoundError`` for anything else."""
    if name not in MEDIA_TYPES:
        raise NotFoundError(f"no playground file {name}")
    data = (resources.files("serve_app") / "static" / name).read_bytes()
    return data, MEDIA_TYPES[name]
