// Publishes the fake camera/microphone like the Millicast SDK's Publish.connect():
// sendonly transceivers, offer (munged like the SDK) -> `publish` -> answer.
// State for tests: window.hubbub = {state, publisherId, error, events, reply, stats(), stop()}.
import { flag, q } from "./params.js";
import { preferVideoCodec, setDtx, setStereo } from "./sdp.js";
import { Signaling, withToken } from "./signaling.js";
import { outboundByMid, selectedPair } from "./stats.js";

const hubbub = {
  state: "idle", // idle | media | signaling | connecting | connected | failed | closed
  publisherId: null,
  error: null,
  events: [],
  reply: null,
  offer: null,
  pc: null,
  signaling: null,
  async stats() {
    const pc = hubbub.pc;
    if (!pc) return { state: hubbub.state };
    return {
      state: hubbub.state,
      connectionState: pc.connectionState,
      iceConnectionState: pc.iceConnectionState,
      outbound: await outboundByMid(pc),
      pair: await selectedPair(pc),
    };
  },
  stop() {
    hubbub.state = "closed";
    if (hubbub.signaling) hubbub.signaling.close();
    if (hubbub.pc) hubbub.pc.close();
  },
  cmd(name, data) { return hubbub.signaling.cmd(name, data); },
};
window.hubbub = hubbub;

function fail(err) {
  if (hubbub.state === "closed") return;
  hubbub.error = String(err && err.message ? err.message : err);
  hubbub.state = "failed";
  console.error("publisher failed:", hubbub.error);
}

async function main() {
  const wsUrl = q("ws");
  const streamName = q("stream", "demo");
  const codec = q("codec", "vp8");
  const wantVideo = flag("video", true);
  const wantAudio = flag("audio", true);
  if (!wsUrl) throw new Error("missing ?ws=");

  hubbub.state = "media";
  const media = await navigator.mediaDevices.getUserMedia({
    audio: wantAudio,
    video: wantVideo ? { width: 640, height: 360, frameRate: 30 } : false,
  });
  document.getElementById("local").srcObject = media;

  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  hubbub.pc = pc;
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected" && hubbub.state === "connecting") {
      hubbub.state = "connected";
    } else if (pc.connectionState === "failed") {
      fail(new Error("peer connection failed"));
    }
  };
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, { direction: "sendonly", streams: [media] });
    if (track.kind === "video" && !preferVideoCodec(t, codec)) {
      throw new Error(`this browser cannot send ${codec}`);
    }
  }

  const offer = await pc.createOffer();
  let sdp = offer.sdp;
  if (wantAudio && flag("stereo", false)) sdp = setStereo(sdp);
  if (wantAudio && flag("dtx", false)) sdp = setDtx(sdp);
  await pc.setLocalDescription({ type: "offer", sdp });
  hubbub.offer = sdp;

  hubbub.state = "signaling";
  const sig = new Signaling(withToken(wsUrl, q("token")));
  hubbub.signaling = sig;
  sig.onEvent((name, data) => hubbub.events.push({ name, data, at: performance.now() }));
  sig.onClose((info) => {
    if (hubbub.state !== "closed") hubbub.events.push({ name: "close", data: info, at: performance.now() });
  });
  await sig.connect();

  const data = { name: streamName, sdp, codec, events: ["active", "inactive", "viewercount"] };
  const sourceId = q("sourceId");
  if (sourceId !== null) data.sourceId = sourceId;
  const priority = q("priority");
  if (priority !== null) data.priority = Number(priority);
  const reply = await sig.cmd("publish", data);
  hubbub.reply = reply;
  hubbub.publisherId = reply.publisherId ?? null;

  hubbub.state = "connecting";
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  if (pc.connectionState === "connected") hubbub.state = "connected";
}

main().catch(fail);
