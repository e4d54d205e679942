"""SDP for an ICE-lite, BUNDLE-only, rtcp-mux-only SFU that answers offers and never offers.

`parse(text)` reads an offer (Chromium, Millicast SDK, aiortc shapes) into dataclasses;
`build_answer(offer, opts)` writes the answer and returns what was negotiated per m-line;
`remote_credentials(offer)` returns the one ICE/DTLS transport of the BUNDLE group.

Everything wrong with the input raises `SdpError` (a `ValueError`) with a message that names the
SDP line or the m-line ("SDP line 7: bad m= line", "m-line 2 (mid 1) has no ice-ufrag").
m-lines are numbered from 1 in messages; `Negotiated.index` counts from 0.

Answer rules (RFC 8829 JSEP §5.3, RFC 8843 BUNDLE, RFC 8839 ICE SDP, RFC 5763 DTLS-SRTP):
ICE-lite, one BUNDLE group, `a=setup:passive` (the server is the DTLS server), rtcp-mux required,
opus only for audio, VP8/VP9/H264/AV1 for video, no rtx/red/fec (NACKs are answered from a packet
cache with the original packet, so RFC 4588 is not needed), only supported header extensions.
"""

from __future__ import annotations

from hubbub.media.sdp.answer import build_answer as build_answer
from hubbub.media.sdp.codecs import h264_profile as h264_profile
from hubbub.media.sdp.codecs import same_codec as same_codec
from hubbub.media.sdp.model import AUX_CODECS as AUX_CODECS
from hubbub.media.sdp.model import DEFAULT_EXTENSIONS as DEFAULT_EXTENSIONS
from hubbub.media.sdp.model import MAX_MEDIA_SECTIONS as MAX_MEDIA_SECTIONS
from hubbub.media.sdp.model import MAX_SDP_BYTES as MAX_SDP_BYTES
from hubbub.media.sdp.model import URI_ABS_SEND_TIME as URI_ABS_SEND_TIME
from hubbub.media.sdp.model import URI_AUDIO_LEVEL as URI_AUDIO_LEVEL
from hubbub.media.sdp.model import URI_MID as URI_MID
from hubbub.media.sdp.model import URI_REPAIRED_RID as URI_REPAIRED_RID
from hubbub.media.sdp.model import URI_RID as URI_RID
from hubbub.media.sdp.model import URI_TWCC as URI_TWCC
from hubbub.media.sdp.model import URI_VIDEO_ORIENTATION as URI_VIDEO_ORIENTATION
from hubbub.media.sdp.model import VIDEO_CODECS as VIDEO_CODECS
from hubbub.media.sdp.model import AnswerOptions as AnswerOptions
from hubbub.media.sdp.model import Codec as Codec
from hubbub.media.sdp.model import MediaSection as MediaSection
from hubbub.media.sdp.model import Negotiated as Negotiated
from hubbub.media.sdp.model import SdpError as SdpError
from hubbub.media.sdp.model import SendTrack as SendTrack
from hubbub.media.sdp.model import SessionDescription as SessionDescription
from hubbub.media.sdp.parser import parse as parse
from hubbub.media.sdp.parser import remote_credentials as remote_credentials
