// SDP munging the Millicast SDK does on its offers (so the server sees the same SDP).

// SdpParser.setDTX: first opus fmtp gets usedtx=1 (RFC 7587 §6.1).
export function setDtx(sdp) {
  return sdp.replace("useinbandfec=1", "useinbandfec=1; usedtx=1");
}

// SdpParser.setStereo: every opus fmtp gets stereo=1.
export function setStereo(sdp) {
  return sdp.replace(/useinbandfec=1/g, "useinbandfec=1; stereo=1");
}

// Put `codec` ("vp8", "h264", "vp9", "av1") first and drop other video codecs (rtx kept), as
// the SDK's codec option does. Returns false when the browser cannot send that codec.
export function preferVideoCodec(transceiver, codec) {
  const caps = RTCRtpSender.getCapabilities("video");
  if (!caps) return false;
  const mime = "video/" + codec.toLowerCase();
  const chosen = caps.codecs.filter((c) => c.mimeType.toLowerCase() === mime);
  if (chosen.length === 0) return false;
  const rtx = caps.codecs.filter((c) => c.mimeType.toLowerCase() === "video/rtx");
  transceiver.setCodecPreferences([...chosen, ...rtx]);
  return true;
}
