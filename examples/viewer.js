// View.connect() with multiplexed audio tracks; shows who talks in which track (vad events).
// State for scripts: window.example.
import { directorUrl, formValues, loadSdk, logger, params, prefill } from "./common.js";

const $ = (id) => document.getElementById(id);
const log = logger($("log"));
const example = { state: "idle", error: null, events: [], tracks: [], slots: {}, view: null };
window.example = example;
const live = new Map(); // sourceId ("" = main) -> active payload

function setState(state, error = null) {
  example.state = state;
  example.error = error;
  $("status").textContent = error ? `${state}: ${error}` : state;
  $("status").className = state;
  $("start").disabled = state === "connecting" || state === "viewing";
  $("stop").disabled = !(state === "connecting" || state === "viewing");
}

function showSources() {
  const names = [...live.keys()].map((s) => s || "(main)");
  $("sources").textContent = names.length ? names.join(", ") : "none";
}

function showSlots() {
  const box = $("slots");
  box.replaceChildren();
  for (const [mid, sourceId] of Object.entries(example.slots)) {
    const div = document.createElement("div");
    div.className = "slot" + (sourceId ? " talking" : "");
    div.textContent = `track ${mid}: ${sourceId ?? "idle"}`;
    box.appendChild(div);
  }
}

function onTrack(event) {
  const mid = event.transceiver.mid;
  example.tracks.push({ mid, kind: event.track.kind });
  if (event.track.kind === "video") {
    $("main").srcObject = event.streams[0] ?? new MediaStream([event.track]);
    return;
  }
  // Audio tracks after the first are the voice-activity slots: idle until a `vad` names a source.
  if (example.tracks.filter((t) => t.kind === "audio").length > 1 && !(mid in example.slots)) {
    example.slots[mid] = null;
    showSlots();
  }
  // Every audio track plays on its own element (video elements stay muted for autoplay).
  const audio = document.createElement("audio");
  audio.autoplay = true;
  audio.dataset.mid = mid;
  audio.srcObject = new MediaStream([event.track]);
  $("audio").appendChild(audio);
  audio.play().catch(() => log(`click the page to allow audio (track ${mid})`));
}

function onEvent(ev) {
  example.events.push(ev);
  const data = ev.data ?? {};
  if (ev.name === "active") live.set(data.sourceId ?? "", data);
  if (ev.name === "inactive") live.delete(data.sourceId ?? "");
  if (ev.name === "stopped") live.clear();
  if (ev.name === "vad") example.slots[data.mediaId] = data.sourceId ?? null;
  if (ev.name === "viewercount") $("viewers").textContent = data.viewercount;
  showSources();
  showSlots();
  log(`${ev.name} ${JSON.stringify(data)}`);
}

async function start(event) {
  event?.preventDefault();
  const form = formValues($("form"));
  setState("connecting");
  try {
    const { Director, View } = await loadSdk();
    Director.setEndpoint(directorUrl());
    const view = new View(undefined, () => Director.getSubscriber({
      streamName: form.streamName,
      streamAccountId: params.get("accountId") || "hubbub",
      subscriberToken: form.subscriberToken || undefined,
    }));
    example.view = view;
    view.on("track", onTrack);
    view.on("broadcastEvent", onEvent);
    view.on("connectionStateChange", (state) => {
      log(`peer connection ${state}`);
      if (state === "connected") setState("viewing");
    });
    view.on("reconnect", (info) => log(`reconnecting in ${info.timeout} ms: ${info.error?.message}`));
    const slots = Number(form.multiplexedAudioTracks || 0);
    const options = { multiplexedAudioTracks: slots };
    if (form.pinnedSourceId) options.pinnedSourceId = form.pinnedSourceId;
    const excluded = form.excludedSourceIds.split(",").map((s) => s.trim()).filter(Boolean);
    if (excluded.length) options.excludedSourceIds = excluded;
    await view.connect(options);
    log(`viewing ${form.streamName}`);
  } catch (e) {
    log(`error: ${e.message ?? e}`);
    setState("failed", String(e.message ?? e));
  }
}

function stop() {
  example.view?.stop();
  $("main").srcObject = null;
  $("audio").replaceChildren();
  setState("stopped");
}

prefill($("form"));
$("form").addEventListener("submit", start);
$("stop").addEventListener("click", stop);
document.addEventListener("click", () => document.querySelectorAll("audio").forEach((a) => a.play().catch(() => {})));
if (params.get("autostart") === "1") start();
