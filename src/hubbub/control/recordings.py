"""Recordings over the admin REST API (Bearer <API secret>), and the node's wiring.

POST   /api/streams/{streamName}/record[?sourceId=]  -> 201 recordings started (every live
       source of the stream, or the one named); 404 nothing live here; 409 recording disabled
DELETE /api/streams/{streamName}/record[?sourceId=]  (also POST .../record/stop) -> 200 the
       finished recordings; 404 not being recorded
GET    /api/recordings[?streamName=]      -> 200 every recording in the data dir, oldest first
GET    /api/recordings/{recordingId}      -> 200 one; 404 unknown
GET    /api/recordings/{recordingId}/file -> the file (video/webm, video/x-matroska, video/mp4);
       409 while recording
DELETE /api/recordings/{recordingId}      -> 200; 404 unknown; 409 still recording

A publish token (or JWT) with `record` starts a recording when its source goes live
(control/publish.py, `record_if_granted`). When a recording is done: webhook `recordings`
`done` (control/webhooks/).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from hubbub.control.auth.http import ApiError, bearer, success, unauthorized
from hubbub.control.auth.service import Auth
from hubbub.control.webhooks.events import recording_done
from hubbub.recording.recordings import RECORDING, RecordingError, RecordingInfo, Recordings

if TYPE_CHECKING:
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream

log = logging.getLogger(__name__)

_scheme = HTTPBearer(auto_error=False, description="the admin API secret")
RecordingIdPath = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$",
                       description="the recording's id (`rec_` + 16 hex digits)")
StreamNamePath = Path(min_length=1, max_length=128)


class RecordingOut(BaseModel):
    id: str
    streamName: str  # noqa: N815 (Millicast-style JSON)
    sourceId: str | None  # noqa: N815
    file: str = Field(description="file name; download it from /api/recordings/{id}/file")
    format: str = Field(description="webm, mkv or mp4")
    mediaType: str  # noqa: N815
    size: int = Field(description="bytes")
    started: float = Field(description="unix time")
    ended: float | None
    duration: float = Field(description="seconds (while recording: so far)")
    state: str = Field(description="recording or done")
    interrupted: bool = Field(description="the node stopped abruptly while recording")
    error: str | None


class RecordingEnvelope(BaseModel):
    status: str = "success"
    data: RecordingOut


class RecordingListEnvelope(BaseModel):
    status: str = "success"
    data: list[RecordingOut]


def recording_json(info: RecordingInfo) -> dict[str, object]:
    return RecordingOut(
        id=info.id, streamName=info.stream, sourceId=info.source_id, file=info.file,
        format=info.format, mediaType=info.media_type, size=info.size, started=info.started,
        ended=info.ended, duration=info.duration, state=info.state,
        interrupted=info.interrupted, error=info.error,
    ).model_dump()


def create_recordings(node: Node) -> Recordings:
    """The node's registry, from `config.recording` (relative directory: under the data dir);
    a finished recording fires the `recordings` `done` webhook."""
    config = node.config.recording
    directory = os.path.join(node.config.auth.data_dir, config.directory)

    def done(info: RecordingInfo) -> None:
        node.webhooks.emit("recordings", "done", recording_done(
            node.account_id, info.stream, info.source_id, info.id, info.file,
            info.media_type, info.size, int(info.started * 1000),
            int((info.ended or info.started) * 1000), info.duration))

    return Recordings(directory, node.streams, config.h264_format, config.enabled, done)


def record_if_granted(node: Node, stream: Stream, source: Source, record: bool) -> None:
    """A publisher's source went live: record it when its token says `record`."""
    if not record:
        return
    try:
        node.recordings.start(stream.name, source.source_id)
    except RecordingError as exc:
        log.warning("not recording %s/%s: %s", stream.name, source.source_id, exc)


def recordings_router(auth: Auth, node: Node) -> APIRouter:
    async def require_admin(request: Request, _: object = Depends(_scheme)) -> None:
        secret = bearer(request.headers.get("authorization"), required=True)
        if secret is None or not auth.admin_secret_ok(secret):
            raise unauthorized("Unauthorized: invalid API secret")

    router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)],
                       tags=["recordings"])
    recordings = node.recordings
    source_q = Query(None, alias="sourceId", max_length=256,
                     description="one source (default: every live source of the stream)")

    def refused(exc: RecordingError) -> ApiError:
        return ApiError(exc.status, f"{_REASONS.get(exc.status, 'Refused')}: {exc}")

    @router.post("/streams/{stream_name}/record", status_code=201,
                 response_model=RecordingListEnvelope)
    async def start_recording(
        stream_name: str = StreamNamePath, source_id: str | None = source_q
    ) -> JSONResponse:
        stream = node.streams.get(stream_name)
        ids = [source_id] if source_id is not None else (
            list(stream.sources) if stream is not None and stream.sources else [None])
        try:
            started = [recordings.start(stream_name, sid) for sid in ids]
        except RecordingError as exc:
            raise refused(exc) from None
        return success([recording_json(i) for i in started], 201)

    async def stop(stream_name: str, source_id: str | None) -> JSONResponse:
        keys = [source_id] if source_id is not None else [
            sid for name, sid in recordings.active_keys() if name == stream_name]
        if not keys:
            raise ApiError(404, f"Not Found: {stream_name!r} is not being recorded")
        try:
            done = [await recordings.stop(stream_name, sid) for sid in keys]
        except RecordingError as exc:
            raise refused(exc) from None
        return success([recording_json(i) for i in done])

    @router.delete("/streams/{stream_name}/record", response_model=RecordingListEnvelope)
    async def stop_recording(
        stream_name: str = StreamNamePath, source_id: str | None = source_q
    ) -> JSONResponse:
        return await stop(stream_name, source_id)

    @router.post("/streams/{stream_name}/record/stop", response_model=RecordingListEnvelope)
    async def stop_recording_post(
        stream_name: str = StreamNamePath, source_id: str | None = source_q
    ) -> JSONResponse:
        return await stop(stream_name, source_id)

    @router.get("/recordings", response_model=RecordingListEnvelope)
    async def list_recordings(
        stream_name: str | None = Query(None, alias="streamName", max_length=128)
    ) -> JSONResponse:
        return success([recording_json(i) for i in recordings.list(stream_name)])

    def find(recording_id: str) -> RecordingInfo:
        info = recordings.get(recording_id)
        if info is None:
            raise ApiError(404, f"Not Found: no recording {recording_id!r}")
        return info

    @router.get("/recordings/{recording_id}", response_model=RecordingEnvelope)
    async def get_recording(recording_id: str = RecordingIdPath) -> JSONResponse:
        return success(recording_json(find(recording_id)))

    @router.get("/recordings/{recording_id}/file", response_class=FileResponse,
                responses={200: {"content": {"video/webm": {}, "video/x-matroska": {},
                                             "video/mp4": {}}}})
    async def download_recording(recording_id: str = RecordingIdPath) -> FileResponse:
        info = find(recording_id)
        if info.state == RECORDING:  # still growing: its length is not known yet
            raise ApiError(409, f"Conflict: recording {recording_id!r} is still being recorded")
        path = recordings.path_of(info)
        if not path.is_file():
            raise ApiError(404, f"Not Found: the file of {recording_id!r} is gone")
        return FileResponse(path, media_type=info.media_type, filename=info.file)

    @router.delete("/recordings/{recording_id}", response_model=RecordingEnvelope)
    async def delete_recording(recording_id: str = RecordingIdPath) -> JSONResponse:
        try:
            info = recordings.delete(recording_id)
        except RecordingError as exc:
            raise refused(exc) from None
        return success(recording_json(info))

    return router


_REASONS = {404: "Not Found", 409: "Conflict"}
