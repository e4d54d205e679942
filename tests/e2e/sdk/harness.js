// Drives the official @millicast/sdk (node_modules, unmodified) for tests/e2e/test_millicast_sdk.py.
// Python calls window.sdk.* through page.evaluate; every SDK object lives here, keyed by a name.
// Only Director.setEndpoint() points the SDK at hubbub; everything else is the SDK's default path.
import { Director, Logger, Publish, View } from "/node_modules/@millicast/sdk/dist/millicast.mjs";
import { audioSamples } from "/tests/e2e/pages/audio.js";
import { inboundByMid, outboundByMid } from "/tests/e2e/pages/stats.js";

Logger.setLevel(Logger.WARN);

const publishers = new Map(); // name -> {client, log}
const viewers = new Map(); // name -> {client, log}

function errorJson(e) {
  if (e === undefined || e === null) return { message: String(e) };
  if (typeof e === "string") return { message: e };
  return { name: e.name ?? null, status: e.status ?? null, message: String(e.message ?? e) };
}

// Every SDK emitter event we care about, in arrival order: {what, data, at}.
function record(client) {
  const log = [];
  const push = (what, data) => log.push({ what, data, at: performance.now() });
  client.on("broadcastEvent", (ev) => push("event", { name: ev.name, data: ev.data ?? null }));
  client.on("connectionStateChange", (state) => push("state", state));
  client.on("reconnect", (info) => push("reconnect", errorJson(info.error)));
  return log;
}

// Remote audio is only pulled through the audio pipeline when it plays somewhere.
function attach(name, event) {
  const kind = event.track.kind;
  const el = document.createElement(kind === "video" ? "video" : "audio");
  el.autoplay = true;
  el.muted = kind === "video";
  el.dataset.viewer = name;
  el.dataset.mid = event.transceiver.mid;
  el.srcObject = new MediaStream([event.track]);
  document.getElementById("media").appendChild(el);
  el.play().catch((e) => console.warn(`play ${name} mid ${event.transceiver.mid}:`, e.message));
}

async function settle(promise) {
  try {
    return { ok: true, value: (await promise) ?? null };
  } catch (e) {
    return { ok: false, error: errorJson(e) };
  }
}

const sdk = {
  ready: true,
  setEndpoint(url) {
    Director.setEndpoint(url);
    return Director.getEndpoint();
  },
  getPublisher(options) { return settle(Director.getPublisher(options)); },
  getSubscriber(options) { return settle(Director.getSubscriber(options)); },

  // Publish.connect with the fake camera/microphone; `options` go to connect() unchanged.
  async publish(name, { token, streamName, video = true, audio = true, ...options }) {
    const media = await navigator.mediaDevices.getUserMedia({ audio, video });
    const entry = { directorCalls: 0 };
    const client = new Publish(undefined, () => {
      entry.directorCalls += 1;
      return Director.getPublisher({ token, streamName });
    });
    Object.assign(entry, { client, log: record(client), media });
    publishers.set(name, entry);
    return settle(client.connect({ mediaStream: media, ...options }));
  },

  // View.connect; `track` events are recorded with their mid and played.
  async view(name, { streamName, streamAccountId = "hubbub", subscriberToken, ...options }) {
    const entry = { directorCalls: 0, tracks: [] };
    const client = new View(undefined, () => {
      entry.directorCalls += 1;
      return Director.getSubscriber({ streamName, streamAccountId, subscriberToken });
    });
    client.on("track", (event) => {
      entry.tracks.push({ mid: event.transceiver.mid, kind: event.track.kind, at: performance.now() });
      attach(name, event);
    });
    Object.assign(entry, { client, log: record(client) });
    viewers.set(name, entry);
    return settle(client.connect(options));
  },

  log(name) { return (viewers.get(name) ?? publishers.get(name)).log; },
  events(name, which) {
    return sdk.log(name).filter((e) => e.what === "event" && (!which || e.data.name === which))
      .map((e) => e.data);
  },
  tracks(name) { return viewers.get(name).tracks; },
  directorCalls(name) { return (viewers.get(name) ?? publishers.get(name)).directorCalls; },
  pc(name) { return (viewers.get(name) ?? publishers.get(name)).client.getRTCPeerConnection(); },
  state(name) {
    const pc = sdk.pc(name);
    return pc ? pc.connectionState : null;
  },
  inbound(name) { return inboundByMid(sdk.pc(name)); },
  outbound(name) { return outboundByMid(sdk.pc(name)); },
  localSdp(name) { return sdk.pc(name).localDescription.sdp; },
  remoteSdp(name) { return sdk.pc(name).remoteDescription.sdp; },
  audioSamples(name, mid, size = 16384) {
    const t = sdk.pc(name).getTransceivers().find((x) => x.mid === mid);
    if (!t) throw new Error(`no transceiver with mid ${mid}`);
    return audioSamples(t.receiver.track, size);
  },

  // View.addRemoteTrack(kind, [stream]): the SDK renegotiates locally; resolves with the mid.
  async addRemoteTrack(name, kind) {
    const stream = new MediaStream();
    const transceiver = await viewers.get(name).client.addRemoteTrack(kind, [stream]);
    return transceiver.mid;
  },
  project(name, sourceId, mapping) { return settle(viewers.get(name).client.project(sourceId, mapping)); },
  unproject(name, mids) { return settle(viewers.get(name).client.unproject(mids)); },
  select(name, layer) { return settle(viewers.get(name).client.select(layer)); },

  stop(name) {
    const entry = viewers.get(name) ?? publishers.get(name);
    if (entry) entry.client.stop();
  },
  history(lines = 200) { return Logger.getHistory().slice(-lines); },
};
window.sdk = sdk;
