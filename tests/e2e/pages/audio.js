// Received audio as samples for tone checks from Python: a WebAudio AnalyserNode tapping a remote
// track. Chromium only pulls remote WebRTC audio into WebAudio while the track also plays in a
// media element (viewer.js attaches an <audio> to every track), so this is a tap, not playback.
const taps = new Map(); // track id -> {ctx, analyser}

// The newest `size` samples (a power of two, 32..32768) the analyser holds, in [-1, 1]. The first
// call starts the tap: it returns zeros until `size` samples have played.
export async function audioSamples(track, size = 16384) {
  let tap = taps.get(track.id);
  if (!tap) {
    const ctx = new AudioContext();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = size;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    tap = { ctx, analyser };
    taps.set(track.id, tap);
  }
  if (tap.ctx.state !== "running") await tap.ctx.resume();
  const data = new Float32Array(tap.analyser.fftSize);
  tap.analyser.getFloatTimeDomainData(data);
  return { sampleRate: tap.ctx.sampleRate, playedSeconds: tap.ctx.currentTime, samples: Array.from(data) };
}
