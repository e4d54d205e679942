// Publish.connect() with the camera and microphone. State for scripts: window.example.
import { directorUrl, formValues, loadSdk, logger, params, prefill } from "./common.js";

const $ = (id) => document.getElementById(id);
const log = logger($("log"));
const example = { state: "idle", error: null, events: [], publish: null };
window.example = example;

function setState(state, error = null) {
  example.state = state;
  example.error = error;
  $("status").textContent = error ? `${state}: ${error}` : state;
  $("status").className = state;
  $("start").disabled = state === "connecting" || state === "publishing";
  $("stop").disabled = !(state === "connecting" || state === "publishing");
}

async function start(event) {
  event?.preventDefault();
  const form = formValues($("form"));
  setState("connecting");
  try {
    const { Director, Publish } = await loadSdk();
    Director.setEndpoint(directorUrl());
    const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: form.video });
    $("preview").srcObject = media;
    // The token generator runs again on every reconnect: the Director hands out a fresh JWT.
    const publish = new Publish(undefined, () =>
      Director.getPublisher({ token: form.token, streamName: form.streamName }));
    example.publish = publish;
    publish.on("broadcastEvent", (ev) => {
      example.events.push(ev);
      if (ev.name === "viewercount") $("viewers").textContent = ev.data.viewercount;
      log(`${ev.name} ${JSON.stringify(ev.data ?? {})}`);
    });
    publish.on("connectionStateChange", (state) => {
      log(`peer connection ${state}`);
      if (state === "connected") setState("publishing");
    });
    publish.on("reconnect", (info) => log(`reconnecting in ${info.timeout} ms: ${info.error?.message}`));
    // viewercount reaches a publisher only when asked for (active/inactive: first/last viewer).
    const options = {
      mediaStream: media, codec: form.codec, dtx: form.dtx,
      events: ["active", "inactive", "viewercount"],
    };
    if (form.sourceId) options.sourceId = form.sourceId;
    await publish.connect(options);
    log(`publishing ${form.streamName}${form.sourceId ? " as " + form.sourceId : ""}`);
  } catch (e) {
    log(`error: ${e.message ?? e}`);
    setState("failed", String(e.message ?? e));
  }
}

function stop() {
  example.publish?.stop();
  const media = $("preview").srcObject;
  media?.getTracks().forEach((t) => t.stop());
  $("preview").srcObject = null;
  setState("stopped");
}

prefill($("form"));
$("form").addEventListener("submit", start);
$("stop").addEventListener("click", stop);
if (params.get("autostart") === "1") start();
