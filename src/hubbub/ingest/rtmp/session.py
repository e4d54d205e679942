"""One RTMP connection, from handshake to close (Adobe RTMP specification 1.0, §7).

The encoder's side, as ffmpeg and OBS send it (§7.2.1.1 connect, §7.2.1.3 createStream,
§7.2.2.6 publish):

    handshake → connect(app) → [releaseStream, FCPublish] → createStream → publish(name?query)
    → @setDataFrame onMetaData, AVC and AAC sequence headers, then audio and video messages
    → FCUnpublish, deleteStream, close

We answer connect with Window Acknowledgement Size, Set Peer Bandwidth, Set Chunk Size 4096 and
`_result` NetConnection.Connect.Success; createStream with a stream id; publish with the
authorizer's verdict: StreamBegin (§7.1.7) and onStatus NetStream.Publish.Start, or an error
onStatus whose description the encoder shows, after which the connection closes.

What a connection may cost (issue 13; `RtmpLimits`): the handshake and then the publish must
each come within a deadline; before the publication is authorized a message may be at most
`max_command_size`, after it `max_message_size`; the chunk stream's own caps (`chunks.py`); an
idle connection is closed. Malformed input closes the connection with one log line; nothing
here raises out of `run()` and nothing is logged per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import parse_qsl

from hubbub.ingest.rtmp import amf0, flv, handshake
from hubbub.ingest.rtmp.amf0 import UNDEFINED, AmfValue
from hubbub.ingest.rtmp.api import (
    BAD_NAME,
    REJECTED,
    Authorizer,
    Publisher,
    PublishRequest,
    Refusal,
)
from hubbub.ingest.rtmp.chunks import (
    ACKNOWLEDGEMENT,
    AMF0_COMMAND,
    AMF0_DATA,
    AMF3_COMMAND,
    AMF3_DATA,
    AUDIO,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ChunkReader,
    ChunkWriter,
    Message,
)
from hubbub.logs import clip

__all__ = ["RtmpLimits", "RtmpSession", "SessionState"]

log = logging.getLogger(__name__)

_COMMAND_CSID = 3  # our NetConnection replies
_STATUS_CSID = 5  # our NetStream onStatus
_STREAM_BEGIN, _PING_REQUEST, _PING_RESPONSE = 0, 6, 7  # user control events (§7.1.7)
_OUT_CHUNK_SIZE = 4096
_WINDOW = 2_500_000
_PLAY_COMMANDS = frozenset({"play", "play2", "seek", "pause"})
_UNPUBLISH_COMMANDS = frozenset({"FCUnpublish", "deleteStream", "closeStream"})


@dataclass(frozen=True)
class RtmpLimits:
    handshake_timeout: float = 5.0  # connect to C2
    publish_timeout: float = 10.0  # handshake to an authorized publish
    authorize_timeout: float = 10.0  # the authorizer's own share of that
    idle_timeout: float = 20.0  # no byte from the encoder for this long
    linger: float = 1.0  # after an error onStatus: how long the encoder has to read it
    max_command_size: int = 64 << 10  # any message before the publish is authorized
    max_message_size: int = 4 << 20  # one audio/video message (an IDR at high bitrate)
    max_chunk_streams: int = 16
    max_partial_messages: int = 4
    max_stream_ids: int = 4  # createStream calls per connection
    read_size: int = 64 << 10


class SessionState(Enum):
    HANDSHAKE = "handshake"
    CONNECTING = "connecting"  # waiting for connect
    CONNECTED = "connected"  # connect answered; createStream, publish
    PUBLISHING = "publishing"
    CLOSING = "closing"  # an error onStatus sent: reading nothing more


class ProtocolError(ValueError):
    """The encoder broke the protocol: logged once, the connection closes."""


def _query(text: str) -> dict[str, str]:
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=32))


class RtmpSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 authorize: Authorizer, limits: RtmpLimits | None = None) -> None:
        self.limits = limits or RtmpLimits()
        self.state = SessionState.HANDSHAKE
        self._reader = reader
        self._writer = writer
        self._authorize = authorize
        peer = writer.get_extra_info("peername")
        self.peer: tuple[str, int] = (str(peer[0]), int(peer[1])) if peer else ("?", 0)
        self._chunks = ChunkReader(self.limits.max_command_size, self.limits.max_chunk_streams,
                                   self.limits.max_partial_messages)
        self._out = ChunkWriter()
        self._app = ""
        self._tc_url = ""
        self._encoder = ""
        self._stream_ids: set[int] = set()
        self._publisher: Publisher | None = None
        self._publish_stream_id = 0
        self._stream_name = ""
        self._nal_length_size = 0
        self._aac_configured = False
        self._ack_window = 0
        self._acked = 0
        self._reason = "closed by the encoder"
        self._logged = False  # the connection's end has had its log line
        self._linger_until = 0.0
        self._publish_by = 0.0

    # The control layer's handle (api.PublishControl).

    def stop(self, description: str, code: str = REJECTED) -> None:
        """`api.PublishControl.stop`; call it on the session's event loop."""
        if self.state is SessionState.CLOSING:
            return
        self._refuse(Refusal(description, code))
        asyncio.get_running_loop().call_later(self.limits.linger, self._writer.close)

    async def run(self) -> None:
        """Serves the connection until it ends; never raises (except when cancelled)."""
        try:
            await self._serve()
        except ValueError as exc:  # ProtocolError, AmfError, ChunkError, FlvError, ...
            self._reason = f"malformed input: {exc}"
            self._log_end(clip(exc, 200))
        except TimeoutError:  # before OSError, its base class
            self._log_end(self._reason)
        except OSError as exc:  # ConnectionResetError and the like: the encoder's business
            self._reason = f"connection error: {exc}"
        except asyncio.CancelledError:
            self._reason = "server closing"
            raise
        except Exception:
            self._reason = "internal error"
            self._logged = True
            log.exception("rtmp %s: internal error", self._who())
        finally:
            self._end_publication(self._reason)
            self.state = SessionState.CLOSING
            self._writer.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._reason = "handshake not completed in time"
        try:
            async with asyncio.timeout(self.limits.handshake_timeout):
                await handshake.accept(self._reader, self._writer)
        except asyncio.IncompleteReadError:  # a port probe or health check: not worth a line
            self._reason = "closed during the handshake"
            return
        self.state = SessionState.CONNECTING
        self._publish_by = loop.time() + self.limits.publish_timeout
        while True:
            now = loop.time()
            if self.state is SessionState.CLOSING:
                deadline = self._linger_until  # and `_reason` stays the refusal's
            elif self.state is SessionState.PUBLISHING:
                deadline = now + self.limits.idle_timeout
                self._reason = f"idle for {self.limits.idle_timeout:g} s"
            elif self._publish_by < now + self.limits.idle_timeout:
                deadline = self._publish_by
                self._reason = f"no publish within {self.limits.publish_timeout:g} s"
            else:
                deadline = now + self.limits.idle_timeout
                self._reason = f"idle for {self.limits.idle_timeout:g} s"
            try:
                async with asyncio.timeout_at(deadline):
                    data = await self._reader.read(self.limits.read_size)
            except TimeoutError:
                if self.state is SessionState.CLOSING:
                    return
                raise
            if not data:
                if self.state is not SessionState.CLOSING:
                    self._reason = "closed by the encoder"
                return
            if self.state is SessionState.CLOSING:
                continue  # drained unread, so our close is a FIN, not a reset
            self._chunks.feed(data)
            while not self._closing():  # a message may have refused the publication
                message = self._chunks.next_message()
                if message is None:
                    break
                await self._dispatch(message)
            self._acknowledge()
            try:
                async with asyncio.timeout(self.limits.idle_timeout):
                    await self._writer.drain()
            except TimeoutError:
                self._reason = "not reading our replies"
                raise

    def _log_end(self, reason: str) -> None:
        self._logged = True
        log.info("rtmp %s: closed, %s", self._who(), reason)

    def _closing(self) -> bool:
        return self.state is SessionState.CLOSING

    def _who(self) -> str:
        name = f" {clip(self._stream_name, 60)}" if self._stream_name else ""
        return f"{self.peer[0]}:{self.peer[1]}{name}"

    # Messages.

    async def _dispatch(self, message: Message) -> None:
        kind = message.type_id
        if kind in (VIDEO, AUDIO):
            self._media(message)
        elif kind in (AMF0_COMMAND, AMF3_COMMAND):
            payload = message.payload
            if kind == AMF3_COMMAND:  # §7.1.1: a format byte, then AMF0 in practice
                payload = payload[1:]
            await self._command(amf0.decode_all(payload), message.stream_id)
        elif kind in (AMF0_DATA, AMF3_DATA):
            payload = message.payload[1:] if kind == AMF3_DATA else message.payload
            self._data(amf0.decode_all(payload))
        elif kind == WINDOW_ACK_SIZE and len(message.payload) >= 4:  # §5.4.4
            self._ack_window = int.from_bytes(message.payload[:4], "big")
        elif kind == USER_CONTROL and message.payload[:2] == _PING_REQUEST.to_bytes(2, "big"):
            self._writer.write(self._out.user_control(_PING_RESPONSE, message.payload[2:6]))
        elif kind in (ACKNOWLEDGEMENT, SET_PEER_BANDWIDTH, USER_CONTROL):
            pass
        # Other types (shared objects, aggregate messages) are not used by encoders: ignored.

    def _acknowledge(self) -> None:
        # §5.4.3: a peer that set a window expects an Acknowledgement after each window's bytes.
        received = self._chunks.bytes_received
        if self._ack_window and received - self._acked >= self._ack_window:
            self._acked = received
            self._writer.write(self._out.acknowledgement(received))

    async def _command(self, values: list[AmfValue], stream_id: int) -> None:
        if len(values) < 2 or not isinstance(values[0], str):
            raise ProtocolError("command without a name")
        name, tid = values[0], values[1]
        if not isinstance(tid, float):
            raise ProtocolError(f"command {clip(name, 40)} without a transaction id")
        if name == "connect":
            self._connect(tid, values[2] if len(values) > 2 else None)
        elif self.state is SessionState.CONNECTING:
            raise ProtocolError(f"{clip(name, 40)} before connect")
        elif name == "createStream":
            if len(self._stream_ids) >= self.limits.max_stream_ids:
                raise ProtocolError(f"more than {self.limits.max_stream_ids} createStream")
            new_id = len(self._stream_ids) + 1
            self._stream_ids.add(new_id)
            self._reply("_result", tid, None, new_id)
        elif name == "publish":
            await self._publish(values, stream_id)
        elif name in _UNPUBLISH_COMMANDS:
            if self.state is SessionState.PUBLISHING:
                self._end_publication("unpublished by the encoder")
                self.state = SessionState.CONNECTED  # it may publish again, in time
                self._chunks.max_message_size = self.limits.max_command_size
                self._publish_by = asyncio.get_running_loop().time() + self.limits.publish_timeout
        elif name in ("releaseStream", "FCPublish", "getStreamLength"):
            if tid:
                self._reply("_result", tid, None, UNDEFINED)
        elif name in _PLAY_COMMANDS:
            self._refuse(Refusal("hubbub: RTMP playback is not supported", "NetStream.Play.Failed"),
                         stream_id)
        elif tid and not name.startswith("_"):
            self._reply("_error", tid, None, {"level": "error", "code": "NetConnection.Call.Failed",
                                             "description": "unknown command"})

    def _connect(self, tid: float, args: AmfValue) -> None:
        if self.state is not SessionState.CONNECTING:
            raise ProtocolError("connect on a connected session")
        if not isinstance(args, dict):
            raise ProtocolError("connect without a command object")
        app, tc_url, encoder = args.get("app"), args.get("tcUrl"), args.get("flashVer")
        self._app = app if isinstance(app, str) else ""
        self._tc_url = tc_url if isinstance(tc_url, str) else ""
        self._encoder = encoder if isinstance(encoder, str) else ""
        self.state = SessionState.CONNECTED
        out = self._out
        self._writer.write(out.window_ack_size(_WINDOW) + out.set_peer_bandwidth(_WINDOW)
                           + out.set_chunk_size(_OUT_CHUNK_SIZE))
        self._reply("_result", tid, {"fmsVer": "FMS/3,0,1,123", "capabilities": 31, "mode": 1},
                    {"level": "status", "code": "NetConnection.Connect.Success",
                     "description": "Connection succeeded.", "objectEncoding": 0})

    async def _publish(self, values: list[AmfValue], stream_id: int) -> None:
        if self.state is not SessionState.CONNECTED or stream_id not in self._stream_ids:
            raise ProtocolError("publish without a stream, or a second publish")
        name = values[3] if len(values) > 3 else None
        if not isinstance(name, str) or not name:
            self._refuse(Refusal("hubbub: no stream name", BAD_NAME), stream_id)
            return
        stream_name, _, query_text = name.partition("?")
        self._stream_name = stream_name
        # Some tools put the query on the app or the tcUrl; the publish name's wins.
        query = _query(self._tc_url.partition("?")[2]) | _query(self._app.partition("?")[2])
        query |= _query(query_text)
        request = PublishRequest(self._app.partition("?")[0], stream_name, query, self.peer,
                                 self._tc_url, self._encoder, self)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.limits.authorize_timeout):
                verdict = await self._authorize(request)
        except TimeoutError:
            verdict = Refusal("hubbub: authorization timed out")
        except Exception:
            log.exception("rtmp %s: authorizer failed", self._who())
            verdict = Refusal("hubbub: internal error")
        if isinstance(verdict, Refusal):
            self._refuse(verdict, stream_id)
            return
        if self._closing():  # stopped while the authorizer ran: the publisher ends at once
            verdict.closed(self._reason)
            return
        self._publisher = verdict
        self._publish_stream_id = stream_id
        self.state = SessionState.PUBLISHING
        self._chunks.max_message_size = self.limits.max_message_size
        self._writer.write(self._out.user_control(_STREAM_BEGIN, stream_id.to_bytes(4, "big")))
        self._status(stream_id, "status", "NetStream.Publish.Start",
                     f"{clip(stream_name, 80)} is now published.")
        log.info("rtmp %s: publishing (app %s, %s, authorized in %.0f ms)", self._who(),
                 clip(self._app, 60), clip(self._encoder, 60), (time.monotonic() - started) * 1000)

    def _data(self, values: list[AmfValue]) -> None:
        # @setDataFrame("onMetaData", {...}) as ffmpeg sends it, or onMetaData({...}) directly.
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        if (self._publisher is not None and len(values) > 1 and values[0] == "onMetaData"
                and isinstance(values[1], dict)):
            self._verdict(self._publisher.on_metadata(values[1]))

    # Media (FLV tag bodies, flv.py).

    def _media(self, message: Message) -> None:
        publisher = self._publisher
        if publisher is None or message.stream_id != self._publish_stream_id:
            raise ProtocolError("media before publish, or on another stream")
        try:
            if message.type_id == VIDEO:
                self._video(publisher, message)
            else:
                self._audio(publisher, message)
        except flv.FlvError as exc:
            self._refuse(Refusal(f"hubbub: malformed media: {exc}"))

    def _video(self, publisher: Publisher, message: Message) -> None:
        tag = flv.parse_video_tag(message.payload)
        if tag.codec_id != flv.AVC:
            self._refuse(Refusal(f"hubbub: {tag.codec_name} video is not supported (use H.264)"))
        elif tag.packet_type == flv.AVC_SEQUENCE_HEADER:
            config = flv.parse_avc_config(tag.data)
            self._nal_length_size = config.nal_length_size
            self._verdict(publisher.on_video_config(config))
        elif tag.packet_type == flv.AVC_NALU:
            if not self._nal_length_size:
                raise flv.FlvError("H.264 frames before the AVC sequence header")
            nalus = flv.split_nalus(tag.data, self._nal_length_size)
            if not nalus:
                return
            self._verdict(publisher.on_video(message.timestamp, tag.composition_time, tag.is_key,
                                             nalus))
        # End of sequence (2) and video info/command frames carry nothing to forward.

    def _audio(self, publisher: Publisher, message: Message) -> None:
        tag = flv.parse_audio_tag(message.payload)
        if tag.sound_format != flv.AAC:
            self._refuse(Refusal(f"hubbub: {tag.codec_name} audio is not supported (use AAC)"))
        elif tag.packet_type == flv.AAC_SEQUENCE_HEADER:
            self._aac_configured = True
            self._verdict(publisher.on_audio_config(flv.parse_aac_config(tag.data)))
        elif tag.packet_type == flv.AAC_RAW:
            if not self._aac_configured:
                raise flv.FlvError("AAC frames before the AAC sequence header")
            self._verdict(publisher.on_audio(message.timestamp, tag.data))

    def _verdict(self, refusal: Refusal | None) -> None:
        if refusal is not None:
            self._refuse(refusal)

    # Replies.

    def _reply(self, name: str, tid: float, *args: AmfValue) -> None:
        payload = amf0.encode_all(name, tid, *args)
        self._writer.write(self._out.message(_COMMAND_CSID, AMF0_COMMAND, payload))

    def _status(self, stream_id: int, level: str, code: str, description: str) -> None:
        payload = amf0.encode_all("onStatus", 0, None,
                                  {"level": level, "code": code, "description": description})
        self._writer.write(self._out.message(_STATUS_CSID, AMF0_COMMAND, payload, stream_id))

    def _refuse(self, refusal: Refusal, stream_id: int | None = None) -> None:
        """An error onStatus the encoder shows, then nothing more is read; `run` lingers
        `limits.linger` for the encoder to read it and close first."""
        if self.state is SessionState.CLOSING:
            return
        sid = stream_id if stream_id is not None else self._publish_stream_id or 1
        self._status(sid, "error", refusal.code, refusal.description)
        self._reason = f"refused: {refusal.description}"
        self._logged = True
        log.info("rtmp %s: refused (%s): %s", self._who(), refusal.code,
                 clip(refusal.description, 200))
        self._end_publication(self._reason)
        self.state = SessionState.CLOSING
        self._linger_until = asyncio.get_running_loop().time() + self.limits.linger

    def _end_publication(self, reason: str) -> None:
        publisher, self._publisher = self._publisher, None
        self._nal_length_size = 0
        self._aac_configured = False
        if publisher is not None:
            if not self._logged:  # a publication's end is worth a line; errors logged theirs
                log.info("rtmp %s: publication ended, %s", self._who(), reason)
            try:
                publisher.closed(reason)
            except Exception:
                log.exception("rtmp %s: publisher.closed failed", self._who())
