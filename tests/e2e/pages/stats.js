// getStats() summaries keyed by mid, as plain JSON-able objects for Python to read.

const INBOUND_FIELDS = [
  "ssrc", "packetsReceived", "bytesReceived", "packetsLost", "jitter", "nackCount", "pliCount",
  "firCount", "framesReceived", "framesDecoded", "framesDropped", "keyFramesDecoded", "frameWidth",
  "frameHeight", "totalSamplesReceived", "concealedSamples", "silentConcealedSamples",
  "audioLevel", "totalAudioEnergy", "jitterBufferDelay", "jitterBufferEmittedCount",
  "lastPacketReceivedTimestamp", "headerBytesReceived",
];

const OUTBOUND_FIELDS = [
  "ssrc", "rid", "packetsSent", "bytesSent", "retransmittedPacketsSent", "nackCount", "pliCount",
  "firCount", "framesEncoded", "framesSent", "keyFramesEncoded", "frameWidth", "frameHeight",
  "qualityLimitationReason", "targetBitrate", "scalabilityMode", "framesPerSecond",
];

const ZERO_INBOUND = {
  packetsReceived: 0, bytesReceived: 0, packetsLost: 0, framesDecoded: 0, framesReceived: 0,
  keyFramesDecoded: 0, totalSamplesReceived: 0, concealedSamples: 0, audioLevel: 0,
  totalAudioEnergy: 0, jitterBufferDelay: 0, jitterBufferEmittedCount: 0, nackCount: 0,
  pliCount: 0, firCount: 0,
};

function pick(stat, fields) {
  const out = {};
  for (const f of fields) if (stat[f] !== undefined) out[f] = stat[f];
  return out;
}

// One entry per transceiver with a mid: {mid, kind, direction, hasInbound, codec, ...counters}.
// Counters default to 0 so tests can compare without null checks.
export async function inboundByMid(pc) {
  const out = {};
  for (const t of pc.getTransceivers()) {
    if (t.mid === null) continue;
    const report = await t.receiver.getStats();
    const entry = {
      mid: t.mid, kind: t.receiver.track.kind, direction: t.currentDirection,
      trackId: t.receiver.track.id, hasInbound: false, codec: null, ...ZERO_INBOUND,
    };
    report.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      Object.assign(entry, pick(s, INBOUND_FIELDS));
      entry.hasInbound = true;
      const codec = s.codecId && report.get(s.codecId);
      if (codec) entry.codec = codec.mimeType + (codec.sdpFmtpLine ? ";" + codec.sdpFmtpLine : "");
      if (codec) entry.payloadType = codec.payloadType;
    });
    out[t.mid] = entry;
  }
  return out;
}

// {mid: {kind, direction, codec, layers: [per-encoding outbound-rtp], packetsSent, bytesSent}}
export async function outboundByMid(pc) {
  const out = {};
  for (const t of pc.getTransceivers()) {
    if (t.mid === null || !t.sender.track) continue;
    const report = await t.sender.getStats();
    const entry = {
      mid: t.mid, kind: t.sender.track.kind, direction: t.currentDirection, codec: null,
      packetsSent: 0, bytesSent: 0, framesEncoded: 0, layers: [],
    };
    report.forEach((s) => {
      if (s.type !== "outbound-rtp") return;
      const layer = pick(s, OUTBOUND_FIELDS);
      entry.layers.push(layer);
      entry.packetsSent += layer.packetsSent || 0;
      entry.bytesSent += layer.bytesSent || 0;
      entry.framesEncoded += layer.framesEncoded || 0;
      const codec = s.codecId && report.get(s.codecId);
      if (codec) entry.codec = codec.mimeType + (codec.sdpFmtpLine ? ";" + codec.sdpFmtpLine : "");
    });
    out[t.mid] = entry;
  }
  return out;
}

// The selected ICE candidate pair, for checking which addresses media used.
export async function selectedPair(pc) {
  const report = await pc.getStats();
  let pair = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const p = report.get(s.selectedCandidatePairId);
      if (!p) return;
      const local = report.get(p.localCandidateId) || {};
      const remote = report.get(p.remoteCandidateId) || {};
      pair = {
        state: p.state, currentRoundTripTime: p.currentRoundTripTime,
        local: { address: local.address, port: local.port, type: local.candidateType },
        remote: { address: remote.address, port: remote.port, type: remote.candidateType },
        dtlsState: s.dtlsState, srtpCipher: s.srtpCipher,
      };
    }
  });
  return pair;
}
