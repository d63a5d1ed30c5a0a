"""The picture route: a stored plate or scene picture, for callers who may see its estate.

    GET /evidence/{estate}/{device}/picture?ref=<YYYYMMDD>/<file>

Pictures are never a public static folder: the route needs a credential, an estate outside the caller's
scope is a 404 (as if it did not exist), and the ref is checked against the naming scheme before any
path is built. 503 when this gateway keeps no pictures.
"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.params import Depends
from fastapi.responses import FileResponse

from gateway.api.auth import Principal, bearer, require
from gateway.api.context import ApiContext
from gateway.evidence.incident import EvidenceService

__all__ = ["evidence_router"]


def _media_type(head: bytes) -> str:
    return "image/png" if head.startswith(b"\x89PNG") else "image/jpeg"


def evidence_router(ctx: ApiContext, evidence: EvidenceService | None) -> APIRouter:
    router = APIRouter(tags=["evidence"])
    User = Annotated[Principal, Depends(bearer(ctx.auth))]

    @router.get(
        "/evidence/{estate}/{device}/picture",
        dependencies=[require(ctx.auth, "viewer")],
        response_class=FileResponse,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {}, 503: {}},
    )
    async def picture(
        estate: str,
        device: str,
        user: User,
        ref: Annotated[str, Query(max_length=200, description="<YYYYMMDD>/<file name>")],
    ) -> FileResponse:
        if not user.can_see(estate):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "picture not found")
        if evidence is None or evidence.pictures is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "this gateway keeps no pictures")
        path = evidence.pictures.file_of(estate, device, ref)
        if path is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "picture not found")
        with path.open("rb") as handle:
            head = handle.read(8)
        headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
        return FileResponse(path, media_type=_media_type(head), headers=headers)

    return router
