// Views a stream like the Millicast SDK's View.connect(): recvonly video, recvonly audio, then
// `multiplex` more recvonly audio transceivers, in that order; offer -> `view` -> answer.
// State for tests: window.hubbub = {state, subscriberId, error, events, reply, tracks,
// inbound(), pair(), mids(), cmd(name, data), addRemoteTrack(kind), audioSamples(mid), stop()}.
import { audioSamples } from "./audio.js";
import { flag, list, q } from "./params.js";
import { answerWithClonedSection } from "./sdp.js";
import { Signaling, withToken } from "./signaling.js";
import { inboundByMid, selectedPair } from "./stats.js";

const ALL_EVENTS = ["active", "inactive", "layers", "viewercount", "vad", "updated", "migrate", "stopped"];

const hubbub = {
  state: "idle", // idle | signaling | connecting | connected | failed | closed
  subscriberId: null,
  error: null,
  events: [], // {name, data, at} in arrival order
  reply: null,
  offer: null,
  tracks: [], // {mid, kind, trackId} from ontrack
  pc: null,
  signaling: null,
  inbound() { return hubbub.pc ? inboundByMid(hubbub.pc) : Promise.resolve({}); },
  pair() { return hubbub.pc ? selectedPair(hubbub.pc) : Promise.resolve(null); },
  mids() {
    return hubbub.pc.getTransceivers().map((t) => ({
      mid: t.mid, kind: t.receiver.track.kind, direction: t.currentDirection,
    }));
  },
  // Like the SDK's View.addRemoteTrack(kind): client-side renegotiation; returns the new mid.
  async addRemoteTrack(kind) {
    const pc = hubbub.pc;
    const t = pc.addTransceiver(kind, { direction: "recvonly" });
    await pc.setLocalDescription(await pc.createOffer());
    const sdp = answerWithClonedSection(pc.remoteDescription.sdp, kind, t.mid);
    await pc.setRemoteDescription({ type: "answer", sdp });
    return t.mid;
  },
  // {sampleRate, playedSeconds, samples} of the received audio on `mid` (see audio.js).
  audioSamples(mid, size = 16384) {
    const t = hubbub.pc.getTransceivers().find((x) => x.mid === mid);
    if (!t) throw new Error(`no transceiver with mid ${mid}`);
    return audioSamples(t.receiver.track, size);
  },
  eventsNamed(name) { return hubbub.events.filter((e) => e.name === name); },
  cmd(name, data) { return hubbub.signaling.cmd(name, data); },
  stop() {
    hubbub.state = "closed";
    if (hubbub.signaling) hubbub.signaling.close();
    if (hubbub.pc) hubbub.pc.close();
  },
};
window.hubbub = hubbub;

function fail(err) {
  if (hubbub.state === "closed") return;
  hubbub.error = String(err && err.message ? err.message : err);
  hubbub.state = "failed";
  console.error("viewer failed:", hubbub.error);
}

// Remote audio is only pulled through the audio pipeline when it plays somewhere.
function attach(event) {
  const mid = event.transceiver.mid;
  const kind = event.track.kind;
  hubbub.tracks.push({ mid, kind, trackId: event.track.id });
  const el = document.createElement(kind === "video" ? "video" : "audio");
  el.autoplay = true;
  el.playsInline = true;
  el.muted = kind === "video";
  el.dataset.mid = mid;
  el.srcObject = new MediaStream([event.track]);
  document.getElementById("media").appendChild(el);
  el.play().catch((e) => console.warn(`play mid ${mid}:`, e.message));
}

async function main() {
  const wsUrl = q("ws");
  if (!wsUrl) throw new Error("missing ?ws=");
  const multiplex = Number(q("multiplex", "0"));

  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
  hubbub.pc = pc;
  pc.ontrack = attach;
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "connected" && hubbub.state === "connecting") {
      hubbub.state = "connected";
    } else if (pc.connectionState === "failed") {
      fail(new Error("peer connection failed"));
    }
  };
  if (flag("video", true)) pc.addTransceiver("video", { direction: "recvonly" });
  if (flag("audio", true)) pc.addTransceiver("audio", { direction: "recvonly" });
  for (let i = 0; i < multiplex; i++) pc.addTransceiver("audio", { direction: "recvonly" });

  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  hubbub.offer = offer.sdp;

  hubbub.state = "signaling";
  const sig = new Signaling(withToken(wsUrl, q("token")));
  hubbub.signaling = sig;
  sig.onEvent((name, data) => hubbub.events.push({ name, data, at: performance.now() }));
  sig.onClose((info) => {
    if (hubbub.state !== "closed") hubbub.events.push({ name: "close", data: info, at: performance.now() });
  });
  await sig.connect();

  const events = q("events") === null ? ALL_EVENTS : list("events");
  const data = { streamId: q("stream", "demo"), sdp: offer.sdp, events };
  const pinned = q("pinned");
  if (pinned !== null) data.pinnedSourceId = pinned;
  const excluded = list("excluded");
  if (excluded.length) data.excludedSourceIds = excluded;
  if (multiplex > 0) data.vad = true;
  const reply = await sig.cmd("view", data);
  hubbub.reply = reply;
  hubbub.subscriberId = reply.subscriberId ?? null;

  hubbub.state = "connecting";
  await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  if (pc.connectionState === "connected") hubbub.state = "connected";
}

main().catch(fail);
