// The two media roles of a room, shaped like the Millicast SDK's Publish and View:
// - Speaker: sendonly mic (+ camera for the owner of a video room), Opus DTX, sourceId = user id.
// - Listener: recvonly video + main audio + 3 multiplexed audio tracks; pins the owner and
//   excludes itself, so nobody ever hears their own voice back. `vad` events say which
//   source is in which multiplexed track.
import { Signaling, signalingUrl } from "./signaling.js";

const PC_CONFIG = { bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" };
export const MULTIPLEXED = 3;

// The SDK's SdpParser.setDTX: usedtx=1 in the Opus fmtp (RFC 7587 §6.1): silence is not sent.
export function setDtx(sdp) {
  return sdp.replace("useinbandfec=1", "useinbandfec=1; usedtx=1");
}

function preferVp8(transceiver) {
  const caps = RTCRtpSender.getCapabilities && RTCRtpSender.getCapabilities("video");
  if (!caps) return;
  const keep = caps.codecs.filter((c) => /video\/(vp8|rtx)/i.test(c.mimeType));
  if (keep.length) transceiver.setCodecPreferences(keep);
}

export class MicError extends Error {}

// getUserMedia with an error people can act on.
export async function openMic(withVideo) {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  try {
    if (withVideo) {
      try {
        return await navigator.mediaDevices.getUserMedia({ audio, video: { width: 640, height: 360, frameRate: 24 } });
      } catch (err) {
        // No camera (or it was refused): the host still speaks, and the room says "audio".
        if (!err || !["NotFoundError", "OverconstrainedError", "NotAllowedError", "NotReadableError"].includes(err.name)) throw err;
      }
    }
    return await navigator.mediaDevices.getUserMedia({ audio, video: false });
  } catch (err) {
    const denied = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
    const missing = err && (err.name === "NotFoundError" || err.name === "OverconstrainedError");
    throw new MicError(
      denied ? "Microphone access was denied. Allow it for this site in your browser, then try again."
        : missing ? "No microphone was found. Plug one in and try again."
          : `Could not open the microphone: ${err && err.message ? err.message : err}`,
    );
  }
}

export class Speaker {
  constructor({ director, streamName, sourceId, stream, onclose }) {
    this.director = director;
    this.streamName = streamName;
    this.sourceId = sourceId;
    this.stream = stream; // MediaStream from openMic
    this.onclose = onclose || (() => {});
    this.pc = null;
    this.signaling = null;
    this.state = "new"; // new | connecting | connected | closed | failed
  }

  async start() {
    this.state = "connecting";
    const pc = new RTCPeerConnection(PC_CONFIG);
    this.pc = pc;
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") this.state = "connected";
      if (pc.connectionState === "failed" && this.state !== "closed") this.#lost("media connection failed");
    };
    for (const track of this.stream.getTracks()) {
      const t = pc.addTransceiver(track, { direction: "sendonly", streams: [this.stream] });
      if (track.kind === "video") preferVp8(t);
    }
    const offer = await pc.createOffer();
    const sdp = setDtx(offer.sdp);
    await pc.setLocalDescription({ type: "offer", sdp });
    const sig = new Signaling(signalingUrl(this.director));
    this.signaling = sig;
    sig.onclose = (info) => this.#lost(`signaling closed (${info.code} ${info.reason})`);
    await sig.connect();
    const reply = await sig.cmd("publish", {
      name: this.streamName, sdp, codec: "vp8", sourceId: this.sourceId, events: [],
    });
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  setMuted(muted) {
    for (const t of this.stream.getAudioTracks()) t.enabled = !muted;
  }

  #lost(reason) {
    if (this.state === "closed") return;
    this.state = "failed";
    this.stop(false);
    this.onclose(reason);
  }

  stop(releaseDevices = true) {
    if (this.state !== "failed") this.state = "closed";
    if (this.signaling) this.signaling.close();
    if (this.pc) this.pc.close();
    if (releaseDevices) for (const t of this.stream.getTracks()) t.stop();
  }
}

export class Listener {
  constructor({ director, streamName, ownerId, selfId, video, container, onclose, onchange }) {
    this.director = director;
    this.streamName = streamName;
    this.ownerId = ownerId;
    this.selfId = selfId;
    this.video = video;
    this.container = container; // where hidden <audio> elements live
    this.onclose = onclose || (() => {});
    this.onchange = onchange || (() => {});
    this.pc = null;
    this.signaling = null;
    this.state = "new";
    this.vad = new Map(); // mid -> sourceId | null (multiplexed tracks)
    this.vadHistory = []; // every vad event, for diagnostics and tests
    this.live = []; // sourceIds with `active`, in order (the server's "oldest live" order)
    this.mids = { video: null, main: null, slots: [] };
    this.videoTrack = null;
    this.elements = [];
    this.blocked = false; // autoplay refused: the UI asks for a tap
  }

  async start() {
    this.state = "connecting";
    const pc = new RTCPeerConnection(PC_CONFIG);
    this.pc = pc;
    pc.ontrack = (ev) => this.#attach(ev);
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "connected") { this.state = "connected"; this.onchange(); }
      if (pc.connectionState === "failed" && this.state !== "closed") this.#lost("media connection failed");
    };
    const video = this.video ? pc.addTransceiver("video", { direction: "recvonly" }) : null;
    const main = pc.addTransceiver("audio", { direction: "recvonly" });
    const slots = [];
    for (let i = 0; i < MULTIPLEXED; i++) slots.push(pc.addTransceiver("audio", { direction: "recvonly" }));
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.mids = { video: video && video.mid, main: main.mid, slots: slots.map((t) => t.mid) };
    for (const mid of this.mids.slots) this.vad.set(mid, null);

    const sig = new Signaling(signalingUrl(this.director));
    this.signaling = sig;
    sig.onevent = (name, data) => this.#event(name, data);
    sig.onclose = (info) => this.#lost(`signaling closed (${info.code} ${info.reason})`);
    await sig.connect();
    const reply = await sig.cmd("view", {
      streamId: this.streamName,
      sdp: offer.sdp,
      pinnedSourceId: this.ownerId,
      excludedSourceIds: [this.selfId],
      events: ["active", "inactive", "stopped", "vad"],
      vad: true,
    });
    await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
  }

  // Who is in the main tracks: the owner when live, else the oldest live source; never us
  // (the server's rule, PROTOCOL.md "view").
  mainSource() {
    const live = this.live.filter((id) => id !== this.selfId);
    if (this.ownerId !== this.selfId && live.includes(this.ownerId)) return this.ownerId;
    return live.length ? live[0] : null;
  }

  // mid -> sourceId for every audio track we receive.
  audioSources() {
    const out = new Map([[this.mids.main, this.mainSource()]]);
    for (const [mid, src] of this.vad) out.set(mid, src);
    return out;
  }

  async resume() {
    this.blocked = false;
    for (const el of this.elements) await el.play().catch(() => { this.blocked = true; });
    this.onchange();
  }

  #event(name, data) {
    if (name === "vad") {
      this.vad.set(data.mediaId, data.sourceId ?? null);
      this.vadHistory.push({ mediaId: data.mediaId, sourceId: data.sourceId ?? null, at: performance.now() });
    } else if (name === "active") {
      if (!this.live.includes(data.sourceId)) this.live.push(data.sourceId);
    } else if (name === "inactive") {
      this.live = this.live.filter((id) => id !== data.sourceId);
    } else if (name === "stopped") {
      this.live = [];
    }
    this.onchange();
  }

  #attach(ev) {
    const mid = ev.transceiver.mid;
    if (ev.track.kind === "video") {
      this.videoTrack = ev.track;
      this.onchange();
      return;
    }
    // Remote audio plays through one element per track (Chromium only pulls remote WebRTC
    // audio through the pipeline while it plays somewhere).
    const el = document.createElement("audio");
    el.autoplay = true;
    el.dataset.mid = mid;
    el.srcObject = new MediaStream([ev.track]);
    this.container.appendChild(el);
    this.elements.push(el);
    el.play().catch(() => { this.blocked = true; this.onchange(); });
  }

  #lost(reason) {
    if (this.state === "closed") return;
    this.state = "failed";
    this.stop();
    this.state = "failed";
    this.onclose(reason);
  }

  stop() {
    this.state = "closed";
    if (this.signaling) this.signaling.close();
    if (this.pc) this.pc.close();
    for (const el of this.elements) { el.srcObject = null; el.remove(); }
    this.elements = [];
  }
}
