"""Server-side recording: a source's media kept as published, without transcoding.

A recording is one more consumer of a live Source, attached the way the cluster's relays are
(`sfu.relay.RelayFeed`, a Viewer the Stream does not choose for): its DownTracks hand each
packet to `SourceRecorder.send_rtp` on the Python path, so streams that are not recorded pay
nothing per packet. The recorder reorders by sequence number (`jitter.py`), rebuilds frames
from the RTP payloads (`depacketize.py`) and hands them to a muxer thread (`writer.py`,
PyAV/FFmpeg) that writes Opus and VP8/VP9 into WebM and H.264 into Matroska or fragmented MP4.
`recordings.py` is the registry: the files in the data dir, their JSON sidecars, start/stop.

The RTP depacketizers are written here by hand (RFC 7741 VP8, RFC 9628 VP9, RFC 6184 H.264
single NAL / STAP-A / FU-A, RFC 7587 Opus): the maintained Python implementations live inside
aiortc, which is a client-side dependency and must not be imported by the server, and PyAV /
FFmpeg have no public API that takes RTP packets without an SDP-driven RTP demuxer on a socket.
"""
