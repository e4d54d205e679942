// End-to-end encryption of Opus frames around the official @millicast/sdk (unmodified), for
// tests/e2e/test_e2ee_chromium.py. This is entirely page-side: hubbub has no E2EE feature and needs
// none. The SFU reads RTP headers and header extensions (RFC 6464 audio levels for its `vad`
// slots), which the browser writes in the clear; the payloads it forwards are opaque to it.
//
// How the transforms reach the SDK's peer connections: the SDK calls `new RTCPeerConnection()`
// itself, so this page replaces window.RTCPeerConnection (before any connect) with a subclass
// whose addTransceiver() sets an RTCRtpScriptTransform on every audio sender (publisher) or
// audio receiver (viewer with the key) at the moment the SDK creates it, before the first frame
// is encoded or received. A viewer page that was given no key gets plain peer connections.
//
// window.sdk is tests/e2e/sdk/harness.js (views, Director endpoint, stats, audio taps); this
// module adds window.e2ee: publish an oscillator tone encrypted, or decrypt what a View receives.
import "/tests/e2e/sdk/harness.js";
import { Director, Publish } from "/node_modules/@millicast/sdk/dist/millicast.mjs";

const worker = new Worker("frame-cipher.js");
const ciphertexts = new Map(); // sender label -> [hex of every encrypted frame it sent]
const decryption = { decrypted: 0, failed: 0 };
worker.onmessage = ({ data }) => {
  if (data.sent) {
    if (!ciphertexts.has(data.label)) ciphertexts.set(data.label, []);
    ciphertexts.get(data.label).push(data.sent);
  } else if (data.decryption) {
    Object.assign(decryption, data.decryption);
  }
};

let role = null; // null (no transforms), {op: "encrypt", key, label} or {op: "decrypt", key}
const peers = [];

function hexBytes(hex) {
  return new Uint8Array(hex.match(/../g).map((b) => parseInt(b, 16)));
}

const NativePeerConnection = window.RTCPeerConnection;
class E2EEPeerConnection extends NativePeerConnection {
  constructor(...args) {
    super(...args);
    this.e2ee = role && { ...role }; // the role when the SDK created this peer connection
    peers.push(this);
  }

  addTransceiver(trackOrKind, init) {
    const transceiver = super.addTransceiver(trackOrKind, init);
    const kind = typeof trackOrKind === "string" ? trackOrKind : trackOrKind.kind;
    const r = this.e2ee;
    if (r && kind === "audio") {
      if (r.op === "encrypt" && init?.direction !== "recvonly") {
        transceiver.sender.transform = new RTCRtpScriptTransform(worker, r);
      } else if (r.op === "decrypt") {
        transceiver.receiver.transform = new RTCRtpScriptTransform(worker, r);
      }
    }
    return transceiver;
  }
}
window.RTCPeerConnection = E2EEPeerConnection;

const publishers = new Map(); // name -> {client, ctx}

const e2ee = {
  // Views created after this call decrypt their audio with `keyHex` (AES-128-GCM).
  decryptWith(keyHex) {
    role = { op: "decrypt", key: hexBytes(keyHex) };
  },

  // Publish.connect (audio only) of a WebAudio oscillator at `frequency` Hz (`gain` 0: silence),
  // every Opus frame encrypted with `keyHex`. Resolves {ok} or {ok: false, error}.
  async publish(name, { token, streamName, keyHex, frequency, gain = 0.3, ...options }) {
    const ctx = new AudioContext();
    const tone = new OscillatorNode(ctx, { frequency });
    const level = new GainNode(ctx, { gain });
    const out = new MediaStreamAudioDestinationNode(ctx, { channelCount: 1 });
    tone.connect(level).connect(out);
    tone.start();
    await ctx.resume();
    const client = new Publish(undefined, () => Director.getPublisher({ token, streamName }));
    publishers.set(name, { client, ctx });
    role = { op: "encrypt", key: hexBytes(keyHex), label: name };
    try {
      await client.connect({ mediaStream: out.stream, ...options });
      return { ok: true };
    } catch (e) {
      return { ok: false, error: String(e?.message ?? e) };
    } finally {
      role = null;
    }
  },
  state(name) {
    const pc = publishers.get(name)?.client.getRTCPeerConnection();
    return pc ? pc.connectionState : null;
  },
  // Which peer connections got transforms, for the test's own sanity check.
  transforms() {
    return peers.map((pc) => ({
      op: pc.e2ee?.op ?? null,
      senders: pc.getSenders().filter((s) => s.transform).length,
      receivers: pc.getReceivers().filter((r) => r.transform).length,
    }));
  },
  ciphertexts() { return Object.fromEntries(ciphertexts); },
  decryption() { return { ...decryption }; },
};
window.e2ee = e2ee;
