"""Ingest from standard broadcast tools (issue 16): protocols that feed a stream from outside
WebRTC. `rtmp/` is the RTMP protocol floor: handshake, chunk stream, AMF0 commands and FLV
tags, handing authorized publishers' media to callbacks. It knows nothing of streams or tokens;
the control layer implements its `Authorizer` and `Publisher` interfaces.
"""
