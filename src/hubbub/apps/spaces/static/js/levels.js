// Speaking indicators. Who is in which received audio track comes from the Listener (`vad`
// events for the multiplexed tracks, the main source for the first one); how loud each track
// is comes from getStats: the rise of totalAudioEnergy over totalSamplesDuration between two
// polls is the mean power of what played in between, so short words (and DTX bursts) are not
// missed the way a sampled `audioLevel` would miss them. Our own voice is measured on the
// sender's media-source stats.

const POLL_MS = 200;
const THRESHOLD = 0.01; // RMS ~ -40 dBFS: speech, not room noise or comfort noise
const HOLD_MS = 800; // stays lit between words

export class SpeakingMeter {
  constructor({ getListener, getSpeaker, selfId, onchange }) {
    this.getListener = getListener;
    this.getSpeaker = getSpeaker;
    this.selfId = selfId;
    this.onchange = onchange;
    this.previous = new Map(); // key -> {energy, duration}
    this.lastLoud = new Map(); // sourceId -> time
    this.levels = new Map(); // sourceId -> rms (latest)
    this.speaking = new Set();
    this.timer = setInterval(() => this.poll().catch(() => {}), POLL_MS);
  }

  #rms(key, energy, duration) {
    const prev = this.previous.get(key);
    this.previous.set(key, { energy, duration });
    if (!prev || duration <= prev.duration) return 0;
    return Math.sqrt(Math.max(0, energy - prev.energy) / (duration - prev.duration));
  }

  #heard(sourceId, rms, now) {
    if (!sourceId) return;
    this.levels.set(sourceId, Math.max(rms, this.levels.get(sourceId) || 0));
    if (rms >= THRESHOLD) this.lastLoud.set(sourceId, now);
  }

  async poll() {
    const now = performance.now();
    this.levels = new Map();
    const listener = this.getListener();
    if (listener && listener.pc && listener.state !== "closed") {
      const sources = listener.audioSources();
      for (const t of listener.pc.getTransceivers()) {
        if (!t.mid || !sources.has(t.mid)) continue;
        const report = await t.receiver.getStats();
        report.forEach((s) => {
          if (s.type !== "inbound-rtp" || s.kind !== "audio") return;
          const rms = this.#rms(`in:${t.mid}`, s.totalAudioEnergy || 0, s.totalSamplesDuration || 0);
          this.#heard(sources.get(t.mid), rms, now);
        });
      }
    }
    const speaker = this.getSpeaker();
    if (speaker && speaker.pc && speaker.state !== "closed") {
      const muted = speaker.stream.getAudioTracks().every((t) => !t.enabled);
      const report = await speaker.pc.getStats();
      report.forEach((s) => {
        if (s.type !== "media-source" || s.kind !== "audio") return;
        const rms = this.#rms("out", s.totalAudioEnergy || 0, s.totalSamplesDuration || 0);
        this.#heard(this.selfId, muted ? 0 : rms, now);
      });
    }
    const speaking = new Set();
    for (const [id, at] of this.lastLoud) if (now - at < HOLD_MS) speaking.add(id);
    const changed = speaking.size !== this.speaking.size || [...speaking].some((id) => !this.speaking.has(id));
    this.speaking = speaking;
    if (changed) this.onchange(speaking);
  }

  forget(sourceId) {
    this.lastLoud.delete(sourceId);
  }

  stop() {
    clearInterval(this.timer);
  }
}
