// Publishes with medooze's WHIPClient (node_modules/whip-whep, unmodified): audio is a 440 Hz
// OscillatorNode, video a canvas redrawn every frame.
import { WHIPClient } from "/node_modules/whip-whep/whip.js";
import { q } from "../pages/params.js";
import { outboundByMid } from "../pages/stats.js";
import { fail, followState, hubbub } from "./common.js";

function tone(frequency) {
  const ctx = new AudioContext();
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  const dest = ctx.createMediaStreamDestination();
  osc.frequency.value = frequency;
  gain.gain.value = 0.3;
  osc.connect(gain).connect(dest);
  osc.start();
  return { ctx, track: dest.stream.getAudioTracks()[0] };
}

function canvasVideo(fps) {
  const canvas = document.getElementById("canvas");
  const g = canvas.getContext("2d");
  let n = 0;
  // A timer, not requestAnimationFrame: headless tabs need not paint.
  setInterval(() => {
    n += 1;
    g.fillStyle = `hsl(${(n * 7) % 360}, 80%, 50%)`;
    g.fillRect(0, 0, canvas.width, canvas.height);
    g.fillStyle = "#fff";
    g.fillRect((n * 4) % canvas.width, 100, 40, 40);
    g.font = "32px sans-serif";
    g.fillText(String(n), 10, 40);
  }, 1000 / fps);
  return canvas.captureStream(fps).getVideoTracks()[0];
}

async function main() {
  const audio = tone(Number(q("frequency", "440")));
  if (audio.ctx.state !== "running") await audio.ctx.resume();
  const video = canvasVideo(30);
  const pc = new RTCPeerConnection();
  followState(pc);
  pc.addTransceiver(audio.track, { direction: "sendonly" });
  pc.addTransceiver(video, { direction: "sendonly" });
  const client = new WHIPClient();
  Object.assign(hubbub, {
    pc, client,
    outbound: () => outboundByMid(pc),
    stop: () => client.stop(),  // closes the peer connection, then DELETE
  });
  hubbub.state = "publishing";
  await client.publish(pc, q("endpoint"), q("token"));
}

main().catch(fail);
