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

// View.addRemoteTrack does not ask the server: it fabricates the remote answer for a new
// recvonly transceiver by cloning the first answered m-section of that kind (same payload types
// and header-extension ids), with the new mid, the server sending, and no SSRCs. The SFU must
// therefore tag every packet with the MID extension (RFC 8843 §15) for the browser to route it.
export function answerWithClonedSection(answerSdp, kind, mid) {
  const [session, ...sections] = answerSdp.split(/\r\n(?=m=)/);
  const template = sections.find((s) => s.startsWith(`m=${kind} `));
  if (!template) throw new Error(`no ${kind} m-section to clone`);
  const dropped = /^a=(ssrc|ssrc-group|msid|sendrecv|sendonly|recvonly|inactive|mid):/;
  const lines = template.split("\r\n").filter((l) => l !== "" && !dropped.test(l + ":"));
  lines.push(`a=mid:${mid}`, "a=sendonly");
  const bundled = session.replace(/^(a=group:BUNDLE .*)$/m, `$1 ${mid}`);
  const body = [...sections.map((s) => s.replace(/\r\n$/, "")), lines.join("\r\n")];
  return [bundled.replace(/\r\n$/, ""), ...body].join("\r\n") + "\r\n";
}
