// The far end for harness tests without hubbub: takes a publisher's or viewer's offer, answers
// it (sending fake camera/mic into the first video and first audio m-line when `send`), and
// returns an answer that already holds all ICE candidates (the pages do not trickle).
import { inboundByMid, outboundByMid } from "./stats.js";

const peers = [];

async function answer(offerSdp, { send = false } = {}) {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  peers.push(pc);
  await pc.setRemoteDescription({ type: "offer", sdp: offerSdp });
  if (send) {
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    for (const kind of ["video", "audio"]) {
      const t = pc.getTransceivers().find((x) => x.receiver.track.kind === kind);
      if (!t) continue;
      await t.sender.replaceTrack(media.getTracks().find((tr) => tr.kind === kind));
      t.direction = "sendonly";
    }
  }
  await pc.setLocalDescription();
  if (pc.iceGatheringState !== "complete") {
    await new Promise((resolve) => {
      pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && resolve();
    });
  }
  return pc.localDescription.sdp;
}

window.answerer = {
  answer,
  peers,
  inbound: (i = 0) => inboundByMid(peers[i]),
  outbound: (i = 0) => outboundByMid(peers[i]),
};
window.hubbub = { state: "ready" };
