// Plays with medooze's WHEPClient (node_modules/whip-whep, unmodified) into a <video>, and keeps
// the server-sent events that reach the client's own EventSource.
import { WHEPClient } from "/node_modules/whip-whep/whep.js";
import { audioSamples } from "../pages/audio.js";
import { q } from "../pages/params.js";
import { inboundByMid } from "../pages/stats.js";
import { fail, followState, hubbub } from "./common.js";

// The events our Link header offers. WHEPClient only forwards unnamed messages (onmessage);
// ours are named (`event: active`), so they are listened for by name on its EventSource.
const EVENTS = ["active", "inactive", "vad", "layers", "viewercount", "stopped"];

async function main() {
  const video = document.getElementById("video");
  const stream = new MediaStream();
  const pc = new RTCPeerConnection();
  followState(pc);
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (event) => {
    stream.addTrack(event.track);
    if (stream.getTracks().length < pc.getTransceivers().length) return;
    video.srcObject = stream;  // once, with both tracks: a second load would abort play()
    video.play().catch((err) => console.warn("play:", String(err)));
  };

  const client = new WHEPClient();
  const events = [];  // {event, data (parsed), at (ms since the page started)}
  const source = { url: null, opened: 0, errors: 0, messages: 0 };
  // The client assigns `eventSource` once the events POST is answered; catching the assignment
  // adds the listeners before the stream can deliver anything.
  let eventSource = null;
  Object.defineProperty(client, "eventSource", {
    get: () => eventSource,
    set: (es) => {
      eventSource = es;
      source.url = es.url;
      es.addEventListener("open", () => { source.opened += 1; });
      es.addEventListener("error", () => { source.errors += 1; });
      es.addEventListener("message", () => { source.messages += 1; });
      for (const name of EVENTS) {
        es.addEventListener(name, (e) => {
          events.push({ event: name, data: JSON.parse(e.data), at: performance.now() });
        });
      }
    },
  });

  Object.assign(hubbub, {
    pc, client, events, source,
    inbound: () => inboundByMid(pc),
    audioSamples: () => audioSamples(stream.getAudioTracks()[0]),
    video: () => ({ width: video.videoWidth, height: video.videoHeight,
                    currentTime: video.currentTime, paused: video.paused }),
    stop: () => client.stop(),
  });
  hubbub.state = "viewing";
  await client.view(pc, q("endpoint"), q("token"));
}

main().catch(fail);
