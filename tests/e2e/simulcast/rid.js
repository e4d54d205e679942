// A plain RTCPeerConnection publishing RID simulcast (RFC 8853) over WHIP (RFC 9725): one
// sendonly video m-line with sendEncodings q/h/f, the whole offer POSTed once ICE gathering is
// complete (nothing to trickle on loopback). State and errors as tests/helpers/browser.py's
// wait_for_state reads them; `hubbub.outbound()` gives the per-RID outbound-rtp stats.
import { q } from "../pages/params.js";
import { outboundByMid } from "../pages/stats.js";
import { fail, followState, hubbub } from "../whip/common.js";

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

async function main() {
  const width = Number(q("width", "1280"));
  const height = Number(q("height", "720"));
  const media = await navigator.mediaDevices.getUserMedia({
    video: { width: { exact: width }, height: { exact: height }, frameRate: 30 },
  });
  const track = media.getVideoTracks()[0];
  const pc = new RTCPeerConnection();
  followState(pc);
  const transceiver = pc.addTransceiver(track, {
    direction: "sendonly",
    sendEncodings: [
      { rid: "q", scaleResolutionDownBy: 4 },
      { rid: "h", scaleResolutionDownBy: 2 },
      { rid: "f" },
    ],
  });
  // ?codec=H264 for H.264 (constrained baseline, packetization-mode 1 first), else VP8.
  const codec = q("codec", "VP8");
  const wanted = RTCRtpSender.getCapabilities("video").codecs.filter(
    (c) => c.mimeType === `video/${codec}` || c.mimeType === "video/rtx");
  wanted.sort((a, b) => Number(/packetization-mode=1/.test(b.sdpFmtpLine ?? ""))
    - Number(/packetization-mode=1/.test(a.sdpFmtpLine ?? "")));
  transceiver.setCodecPreferences(wanted);
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  const reply = await fetch(q("endpoint"), {
    method: "POST",
    headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${q("token")}` },
    body: pc.localDescription.sdp,
  });
  const answer = await reply.text();
  if (reply.status !== 201) throw new Error(`WHIP POST: ${reply.status} ${answer}`);
  Object.assign(hubbub, {
    pc,
    offer: pc.localDescription.sdp,
    answer,
    settings: track.getSettings(),
    outbound: () => outboundByMid(pc),
  });
  hubbub.state = "publishing";
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
}

main().catch(fail);
