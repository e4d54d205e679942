"""/examples/: the Millicast SDK example pages (examples/ of a checkout) and the SDK they import.

GET /examples/{page}               examples/<page> (html, js, css)
GET /examples/sdk/millicast.mjs    node_modules/@millicast/sdk/dist/millicast.mjs (`npm ci`)

The SDK's npm package names no open-source licence we could check ("See in LICENSE file", and
no LICENSE file ships in it), so hubbub never bundles a copy: the file is served only where
`npm ci` installed it. Both directories are looked up in $HUBBUB_EXAMPLES_DIR /
$HUBBUB_MILLICAST_SDK_DIR, then the working directory, then the checkout hubbub runs from
(editable install); a wheel install serves them when started from a checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse

import hubbub

SDK_FILE = "millicast.mjs"
SDK_DIST = Path("node_modules") / "@millicast" / "sdk" / "dist"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
          ".css": "text/css"}


def _checkout() -> Path:
    return Path(hubbub.__file__).resolve().parents[2]  # src/hubbub/__init__.py -> the checkout


def find_dir(env: str, relative: Path, marker: str) -> Path | None:
    """The first of $env, ./relative, <checkout>/relative that holds `marker`."""
    candidates = [Path(os.environ[env])] if os.environ.get(env) else []
    candidates += [Path.cwd() / relative, _checkout() / relative]
    return next((c for c in candidates if (c / marker).is_file()), None)


def examples_router() -> APIRouter:
    router = APIRouter(prefix="/examples", include_in_schema=False)
    pages = find_dir("HUBBUB_EXAMPLES_DIR", Path("examples"), "viewer.html")
    sdk = find_dir("HUBBUB_MILLICAST_SDK_DIR", SDK_DIST, SDK_FILE)

    @router.get("/")
    async def index() -> RedirectResponse:
        return RedirectResponse("/examples/viewer.html")

    @router.get(f"/sdk/{SDK_FILE}", response_model=None)
    async def sdk_file() -> FileResponse | JSONResponse:
        if sdk is None:
            return JSONResponse(
                {"status": "fail", "data": {"message": "Not Found: @millicast/sdk is not "
                                            "installed; run `npm ci` in the hubbub checkout"}},
                status_code=404,
            )
        return FileResponse(sdk / SDK_FILE, media_type="text/javascript")

    @router.get("/{name}", response_model=None)
    async def page(
        name: str = PathParam(pattern=r"^[A-Za-z0-9_-]+\.(html|js|css)$"),
    ) -> FileResponse | JSONResponse:
        path = pages / name if pages is not None else None
        if path is None or not path.is_file():
            return JSONResponse({"status": "fail", "data": {"message": "Not Found"}},
                                status_code=404)
        return FileResponse(path, media_type=_TYPES[path.suffix])

    return router
