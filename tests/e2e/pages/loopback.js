// Proves the machine can do WebRTC with fake devices: pc1 sends, pc2 receives, in-page
// signaling. window.hubbub = {state, error, inbound(), outbound(), codecs}.
import { flag, q } from "./params.js";
import { preferVideoCodec } from "./sdp.js";
import { inboundByMid, outboundByMid } from "./stats.js";

const hubbub = {
  state: "idle",
  error: null,
  pc1: null,
  pc2: null,
  inbound() { return hubbub.pc2 ? inboundByMid(hubbub.pc2) : Promise.resolve({}); },
  outbound() { return hubbub.pc1 ? outboundByMid(hubbub.pc1) : Promise.resolve({}); },
  codecs: {
    send: (RTCRtpSender.getCapabilities("video")?.codecs ?? []).map((c) => c.mimeType),
    receive: (RTCRtpReceiver.getCapabilities("video")?.codecs ?? []).map((c) => c.mimeType),
  },
};
window.hubbub = hubbub;

async function main() {
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  const pc1 = new RTCPeerConnection();
  const pc2 = new RTCPeerConnection();
  hubbub.pc1 = pc1;
  hubbub.pc2 = pc2;
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  pc2.ontrack = (e) => {
    const el = document.createElement(e.track.kind);
    el.autoplay = true;
    el.muted = e.track.kind === "video";
    el.srcObject = new MediaStream([e.track]);
    document.getElementById("media").appendChild(el);
  };
  pc2.onconnectionstatechange = () => {
    if (pc2.connectionState === "connected") hubbub.state = "connected";
    if (pc2.connectionState === "failed") { hubbub.state = "failed"; hubbub.error = "ICE failed"; }
  };
  for (const track of media.getTracks()) {
    const t = pc1.addTransceiver(track, { direction: "sendonly" });
    if (track.kind === "video" && !preferVideoCodec(t, q("codec", "vp8"))) {
      throw new Error(`cannot send ${q("codec", "vp8")}`);
    }
  }
  hubbub.state = "connecting";
  await pc1.setLocalDescription();
  await pc2.setRemoteDescription(pc1.localDescription);
  await pc2.setLocalDescription();
  await pc1.setRemoteDescription(pc2.localDescription);
}

if (flag("autostart", true)) {
  main().catch((err) => {
    hubbub.error = String(err && err.message ? err.message : err);
    hubbub.state = "failed";
  });
}
