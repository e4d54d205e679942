// A room page: join (Director JWTs from the Spaces server), presence, listening, speaking,
// the stage, the audience and the owner's controls.
import { ApiError, Presence, call, forgetIdentity, loadIdentity, signIn } from "./api.js";
import { SpeakingMeter } from "./levels.js";
import { Listener, MicError, Speaker, openMic } from "./media.js";
import { ask, avatar, confirmDialog, h, icon, toast } from "./ui.js";

const ENDED = {
  closed: ["This room has ended", "The host closed the room. Thanks for listening!"],
  host_left: ["This room has ended", "The host left, so the room ended. Thanks for listening!"],
  kicked: ["You were removed", "The host removed you from this room."],
  missing: ["Room not found", "This room does not exist (any more)."],
};

export function renderRoom(root, roomId, { go, notice }) {
  const identity = loadIdentity();
  const spaces = window.spaces;
  const s = {
    room: null, role: "listener", selfId: identity && identity.id, listener: null, speaker: null,
    localStream: null, meter: null, presence: null, muted: false, stopped: false,
    mediaRetry: 0, mediaTimer: null, micError: null, reconnecting: false, invitation: null,
  };
  Object.assign(spaces, { page: "room", state: "joining", roomId, selfId: s.selfId, error: null, room: null, role: null });

  const audioHost = h("div.hidden-audio", { "aria-hidden": "true" });
  const ownerVideo = h("video.owner-video", { autoplay: true, playsInline: true, muted: true });
  const body = h("main.room");
  const banner = h("div.banner#banner", { role: "alert", hidden: true });
  const titleEl = h("h1.room-title", {}, "Joining…");
  const liveBadge = h("span.live-dot#live", { hidden: true, title: "the host is here and the room is live" }, "LIVE");
  const bar = h("footer.controls#controls");
  // The room's bottom padding follows the controls bar's height (it wraps on a phone), so the
  // host's actions on the last tiles are never under it.
  const footerObserver = new ResizeObserver(() => {
    document.documentElement.style.setProperty("--footer-h", `${bar.offsetHeight}px`);
  });
  footerObserver.observe(bar);
  root.replaceChildren(
    h("header.topbar.room-top", {},
      h("button.icon-button#back", { title: "Back to the lobby", "aria-label": "Back to the lobby", onclick: () => go("#/") }, icon("back")),
      titleEl,
      liveBadge,
    ),
    banner, body, bar, audioHost,
  );


  const isOwner = () => s.room && s.room.ownerId === s.selfId;
  const me = () => s.room && s.room.participants.find((p) => p.id === s.selfId);

  function showBanner(text, kind = "warn", action = null) {
    banner.hidden = !text;
    banner.className = `banner ${kind}`;
    banner.replaceChildren(...(text ? [h("span", {}, text)] : []), ...(action ? [action] : []));
  }

  function ended(kind, detail) {
    stopAll();
    const [title, text] = ENDED[kind];
    spaces.state = "ended";
    spaces.ended = kind;
    bar.replaceChildren();
    banner.hidden = true;
    closeInvitation();
    liveBadge.hidden = true; // nothing is live any more
    body.replaceChildren(h("section.card.ended#ended", { dataset: { reason: kind } },
      h("h2", {}, title), h("p.muted", {}, detail || text),
      h("button.primary", { onclick: () => go("#/") }, "Back to the lobby")));
  }

  function expired() {
    stopAll();
    forgetIdentity();
    spaces.state = "ended";
    spaces.ended = "expired";
    notice("Your session expired. Pick your name again to continue.", "warn");
    go("#/");
  }

  function fatal(err) {
    if (err instanceof ApiError) {
      if (err.status === 401) return expired();
      if (err.status === 410) return ended(/host left/.test(err.message) ? "host_left" : "closed");
      if (err.status === 404) return ended("missing");
      if (err.status === 403) return ended("kicked", err.message);
    }
    spaces.error = err.message;
    showBanner(err.message, "error");
  }

  // --- joining and media ---------------------------------------------------------------

  async function join() {
    const joined = await call("POST", `/rooms/${roomId}/join`);
    applyState(joined.room);
    return joined;
  }

  function startListener(director) {
    if (s.listener) s.listener.stop();
    const listener = new Listener({
      director, streamName: roomId, ownerId: s.room.ownerId, selfId: s.selfId,
      video: !s.room.audioOnly, container: audioHost,
      onclose: (reason) => mediaLost(`listening: ${reason}`),
      onchange: () => renderMedia(),
    });
    s.listener = listener;
    spaces.listener = listener;
    listener.start().catch((err) => mediaLost(`listening: ${err.message}`));
  }

  // Publish our mic (and camera for the owner of a video room); false when the mic is refused.
  async function startSpeaker(director) {
    if (s.speaker && s.speaker.state !== "closed" && s.speaker.state !== "failed") return true;
    if (!s.localStream) {
      try {
        s.localStream = await openMic(isOwner() && !s.room.audioOnly);
      } catch (err) {
        if (!(err instanceof MicError)) throw err;
        s.micError = err.message;
        spaces.micError = err.message;
        showBanner(err.message, "error", h("button.secondary", { onclick: () => retryMic() }, "Try again"));
        reportMedia(true, false); // the others see "mic blocked", not silence
        render();
        return false;
      }
      s.micError = null;
      spaces.micError = null;
      showBanner("");
      reportMedia(false, s.localStream.getVideoTracks().length > 0);
    }
    if (s.stopped || !s.room || !canSpeak()) return false;
    const speaker = new Speaker({
      director, streamName: roomId, sourceId: s.selfId, stream: s.localStream,
      onclose: (reason) => mediaLost(`speaking: ${reason}`),
    });
    speaker.setMuted(s.muted);
    s.speaker = speaker;
    spaces.speaker = speaker;
    render();
    await speaker.start().catch((err) => mediaLost(`speaking: ${err.message}`));
    return true;
  }

  // Tell the room what our media is (others cannot see a refused microphone otherwise).
  function reportMedia(micBlocked, video) {
    call("POST", `/rooms/${roomId}/media`, { micBlocked, video }).then((reply) => {
      if (reply.room) applyState(reply.room);
    }).catch(() => {});
  }

  async function retryMic() {
    try {
      const joined = await join();
      if (joined.publisher) await startSpeaker(joined.publisher);
    } catch (err) {
      fatal(err);
    }
  }

  function stopSpeaker() {
    if (s.speaker) s.speaker.stop(true);
    s.speaker = null;
    spaces.speaker = null;
    s.localStream = null;
    if (s.meter) s.meter.forget(s.selfId);
  }

  const canSpeak = () => s.role === "owner" || s.role === "speaker";

  // A media connection dropped: fetch fresh JWTs (join again; a demoted speaker gets no
  // publish JWT) and reconnect, with backoff.
  function mediaLost(reason) {
    if (s.stopped || s.mediaTimer) return;
    console.warn("spaces media:", reason);
    const delay = Math.min(8000, 500 * 2 ** s.mediaRetry++);
    s.mediaTimer = setTimeout(async () => {
      s.mediaTimer = null;
      if (s.stopped) return;
      try {
        const joined = await join();
        if (!s.listener || s.listener.state === "failed" || s.listener.state === "closed") startListener(joined.viewer);
        if (joined.publisher && (!s.speaker || s.speaker.state === "failed")) await startSpeaker(joined.publisher);
        if (!joined.publisher && s.speaker) stopSpeaker();
        s.mediaRetry = 0;
      } catch (err) {
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) fatal(err);
        else mediaLost(err.message);
      }
    }, delay);
  }

  // --- presence ----------------------------------------------------------------------

  function onPresence(msg) {
    if (msg.type === "state") {
      applyState(msg.room);
    } else if (msg.type === "invited") {
      showInvitation(msg.by);
    } else if (msg.type === "uninvited") {
      closeInvitation();
      toast("The host withdrew the invitation.");
    } else if (msg.type === "declined") {
      toast(`${msg.username} declined to speak.`);
    } else if (msg.type === "demoted") {
      stopSpeaker();
      toast("The host moved you to the audience.");
      render();
    } else if (msg.type === "kicked") {
      ended("kicked");
    } else if (msg.type === "closed") {
      ended(msg.reason === "host_left" ? "host_left" : "closed");
    }
  }

  async function onPresenceFinal(code, reason) {
    if (s.stopped) return;
    if (code === 4401) return expired();
    if (code === 4010 || code === 4410) return ended(/host left/.test(reason) ? "host_left" : "closed");
    if (code === 4404) return ended("missing");
    if (code === 4003 || (code === 4403 && /removed/.test(reason))) return ended("kicked");
    if (code === 4403) {
      // Gone longer than the grace period: we lost our seat, take it again.
      try {
        await join();
        s.presence = new Presence(roomId, presenceHandlers);
      } catch (err) {
        fatal(err);
      }
      return;
    }
    showBanner(`Disconnected: ${reason || code}`, "error");
  }

  const presenceHandlers = {
    message: onPresence,
    status: (up) => {
      s.reconnecting = !up;
      spaces.presence = up ? "connected" : "reconnecting";
      if (!s.micError) showBanner(up ? "" : "Connection lost — reconnecting…", "warn");
    },
    final: onPresenceFinal,
  };

  function applyState(room) {
    s.room = room;
    spaces.room = room;
    const mine = room.participants.find((p) => p.id === s.selfId);
    const role = mine ? mine.role : "listener";
    if (role !== s.role && role === "listener" && s.speaker) stopSpeaker();
    if (role === "listener" && s.micError) {
      s.micError = null; // off stage: the mic is not needed any more
      spaces.micError = null;
      showBanner("");
    }
    s.role = role;
    spaces.role = role;
    if (mine && mine.invite === "pending" && role === "listener") showInvitation(ownerName());
    else closeInvitation();
    s.muted = mine ? mine.muted : false;
    if (s.speaker) s.speaker.setMuted(s.muted);
    const host = room.participants.find((p) => p.role === "owner");
    liveBadge.hidden = room.closed || !(host && host.online);
    titleEl.textContent = room.name;
    document.title = `${room.name} · Spaces`;
    render();
  }

  // --- actions -------------------------------------------------------------------------

  async function act(path, body, done) {
    try {
      const reply = await call("POST", `/rooms/${roomId}/${path}`, body);
      if (reply.room) applyState(reply.room);
      if (done) done();
    } catch (err) {
      if (err instanceof ApiError && [401, 404, 410].includes(err.status)) fatal(err);
      else toast(err.message, "error");
    }
  }

  // --- invitations: nothing goes live before the listener says yes ---------------------

  const ownerName = () => {
    const owner = s.room && s.room.participants.find((p) => p.role === "owner");
    return owner ? owner.username : "The host";
  };

  function showInvitation(by) {
    if (s.invitation || s.stopped) return;
    spaces.invitation = "shown";
    s.invitation = ask(`${by || "The host"} invites you to speak`,
      "If you join the stage, your microphone goes live and everyone in the room hears you.",
      [{ label: "Not now", value: "no" }, { label: "Join the stage", value: "yes", kind: "primary" }],
      { id: "invitation" });
    s.invitation.answer.then((value) => {
      s.invitation = null;
      spaces.invitation = null;
      if (value) answerInvitation(value === "yes");
    });
  }

  function closeInvitation() {
    if (s.invitation) s.invitation.close();
  }

  async function answerInvitation(accept) {
    try {
      const reply = await call("POST", `/rooms/${roomId}/invitation`, { accept });
      if (reply.room) applyState(reply.room);
      if (accept && reply.publisher) {
        s.role = "speaker"; // only this tab said yes: only this tab publishes
        spaces.role = "speaker";
        const live = await startSpeaker(reply.publisher);
        if (live) toast(s.muted ? "You're on stage (muted)." : "You're on stage — your mic is live.", "success");
      }
    } catch (err) {
      if (err instanceof ApiError && [401, 404, 410].includes(err.status)) fatal(err);
      else toast(err.message, "error");
    }
  }

  const toggleHand = () => act("hand", { raised: !(me() && me().raisedHand) });
  const toggleMute = () => act("mute", { muted: !s.muted });
  const invite = (id) => act("invite", { userId: id });
  const uninvite = (id) => act("uninvite", { userId: id });
  const demote = (id) => act("demote", { userId: id });
  const kick = async (p) => {
    if (await confirmDialog(`Remove ${p.username}?`, "They leave the room and cannot come back.", "Remove")) act("kick", { userId: p.id });
  };
  const leave = () => act("leave", undefined, () => { stopAll(); go("#/"); });
  const closeRoom = async () => {
    if (await confirmDialog("End the room?", "The room ends for everyone in it.", "End room")) act("close", undefined, () => ended("closed", "You ended the room."));
  };

  // The owner's invite control for a listener: Invite, then Invited… (withdraw), or Declined.
  function inviteButton(p, primary) {
    if (p.invite === "pending") {
      return h(`button.ghost.invite.pending${primary ? ".small" : ""}`, { onclick: () => uninvite(p.id), title: "Withdraw the invitation" }, "Invited…");
    }
    const label = p.invite === "declined" ? "Declined · invite again" : (primary ? "Invite to speak" : "Invite");
    return h(`button.${primary ? "primary.small" : "ghost"}.invite${p.invite === "declined" ? ".declined" : ""}`, { onclick: () => invite(p.id) }, label);
  }

  // --- rendering -----------------------------------------------------------------------

  function tile(p, big) {
    const isHost = p.role === "owner";
    const self = p.id === s.selfId;
    const speaking = s.meter && s.meter.speaking.has(p.id);
    const controls = isOwner() && !self && p.role === "speaker" ? h("div.tile-actions", {},
      h("button.ghost.demote", { onclick: () => demote(p.id) }, "To audience"),
      h("button.ghost.danger.kick", { onclick: () => kick(p) }, "Remove")) : null;
    const face = big && !s.room.audioOnly ? h("div.video-frame", {}, ownerVideo, avatar(p.id, p.username, "large")) : avatar(p.id, p.username, big ? "large" : "");
    return h(`div.tile${big ? ".host" : ""}${speaking ? ".speaking" : ""}${p.online ? "" : ".away"}`,
      { dataset: { userId: p.id, role: p.role } },
      h("div.face", {}, face, p.micBlocked ? h("span.badge.blocked-badge", { title: "microphone blocked" }, icon("micOff"))
        : p.muted ? h("span.badge.muted-badge", { title: "muted" }, icon("micOff")) : null),
      h("div.tile-name", {}, h("span.name", { title: p.username }, p.username),
        self ? h("span.you", {}, "(you)") : null,
        h("span.role", {}, isHost ? "Host" : "Speaker"),
        p.micBlocked ? h("span.state.mic-blocked", {}, "mic blocked") : p.muted ? h("span.state.muted", {}, "muted") : null),
      controls);
  }

  function audienceTile(p) {
    const self = p.id === s.selfId;
    const controls = isOwner() && !self ? h("div.tile-actions", {},
      inviteButton(p, false),
      h("button.ghost.danger.kick", { onclick: () => kick(p) }, "Remove")) : null;
    return h(`div.tile.small${p.online ? "" : ".away"}`, { dataset: { userId: p.id, role: p.role } },
      h("div.face", {}, avatar(p.id, p.username, "small"),
        p.raisedHand ? h("span.badge.hand-badge", { title: "hand raised" }, icon("hand")) : null),
      h("div.tile-name", {}, h("span.name", { title: p.username }, p.username),
        self ? h("span.you", {}, "(you)") : null),
      controls);
  }

  function render() {
    if (!s.room || s.stopped) return;
    const room = s.room;
    const owner = room.participants.find((p) => p.role === "owner");
    const speakers = room.participants.filter((p) => p.role === "speaker");
    const audience = room.participants.filter((p) => p.role === "listener");
    const hands = room.hands.map((id) => room.participants.find((p) => p.id === id)).filter(Boolean);
    const sections = [
      h("section.stage#stage", {},
        h("div.section-title", {}, h("h2", {}, "On stage"), h("span.muted", {}, `${speakers.length + 1}`)),
        h("div.stage-grid", {}, owner ? tile(owner, true) : null, ...speakers.map((p) => tile(p, false)))),
    ];
    if (isOwner() && hands.length) {
      sections.push(h("section.hands.card#hands", {},
        h("div.section-title", {}, h("h2", {}, "Raised hands"), h("span.muted", {}, String(hands.length))),
        ...hands.map((p) => h("div.hand-row", { dataset: { userId: p.id } },
          avatar(p.id, p.username, "small"), h("span.name", {}, p.username),
          inviteButton(p, true)))));
    }
    sections.push(h("section.audience#audience", {},
      h("div.section-title", {}, h("h2", {}, "Listening"), h("span.muted", {}, String(audience.length))),
      audience.length ? h("div.audience-grid", {}, ...audience.map(audienceTile)) : h("p.empty", {}, "Nobody in the audience yet.")));
    body.replaceChildren(...sections);
    renderMedia();
    renderBar();
    spaces.state = "live";
  }

  function renderBar() {
    const mine = me();
    const buttons = [];
    if (canSpeak() && s.micError) {
      buttons.push(h("button.round.mic.off#mic", { onclick: () => retryMic(), title: s.micError },
        icon("micOff"), h("span", {}, "Mic blocked")));
    } else if (canSpeak()) {
      buttons.push(h(`button.round.mic${s.muted ? ".off" : ""}#mic`, {
        onclick: toggleMute, "aria-pressed": String(s.muted), title: s.muted ? "Unmute" : "Mute",
      }, icon(s.muted ? "micOff" : "mic"), h("span", {}, s.muted ? "Unmute" : "Mute")));
    } else {
      const up = mine && mine.raisedHand;
      buttons.push(h(`button.round.handbtn${up ? ".on" : ""}#hand`, {
        onclick: toggleHand, "aria-pressed": String(!!up),
      }, icon("hand"), h("span", {}, up ? "Lower hand" : "Raise hand")));
    }
    if (s.listener && s.listener.blocked) {
      buttons.push(h("button.round.accent#enable-audio", { onclick: () => s.listener.resume() }, "Tap to hear"));
    }
    buttons.push(isOwner()
      ? h("button.round.leave#end", { onclick: closeRoom }, icon("leave"), h("span", {}, "End room"))
      : h("button.round.leave#leave", { onclick: leave }, icon("leave"), h("span", {}, "Leave")));
    bar.replaceChildren(h("div.controls-inner", {}, ...buttons));
  }

  function renderMedia() {
    if (isOwner() && s.localStream) {
      if (ownerVideo.srcObject !== s.localStream) ownerVideo.srcObject = s.localStream;
    } else if (s.listener && s.listener.videoTrack && s.listener.mainSource() === (s.room && s.room.ownerId)) {
      const track = s.listener.videoTrack;
      if (!ownerVideo.srcObject || ownerVideo.srcObject.getVideoTracks()[0] !== track) ownerVideo.srcObject = new MediaStream([track]);
    }
    ownerVideo.play().catch(() => {});
    const frame = ownerVideo.parentElement;
    if (frame) frame.classList.toggle("has-video", !!ownerVideo.srcObject && ownerVideoLive());
  }

  function ownerVideoLive() {
    if (!s.room) return false;
    if (isOwner()) return !!s.localStream && s.localStream.getVideoTracks().length > 0;
    return !!s.listener && s.listener.live.includes(s.room.ownerId);
  }

  function markSpeaking(speaking) {
    spaces.speaking = [...speaking];
    for (const el of body.querySelectorAll(".tile[data-user-id]")) {
      el.classList.toggle("speaking", speaking.has(el.dataset.userId));
    }
  }

  function stopAll() {
    if (s.stopped) return;
    s.stopped = true;
    footerObserver.disconnect();
    clearTimeout(s.mediaTimer);
    if (s.presence) s.presence.stop();
    if (s.listener) s.listener.stop();
    stopSpeaker();
    if (s.meter) s.meter.stop();
  }

  // --- start ---------------------------------------------------------------------------

  // A room link opened by someone without a name yet: ask for it here, then go in (the
  // submit is also the user gesture that lets the page play the room's audio).
  function askName() {
    spaces.state = "naming";
    titleEl.textContent = "Join the room";
    const input = h("input#join-name", { type: "text", maxLength: 40, placeholder: "Your name", autocomplete: "nickname", required: true });
    const error = h("p.form-error#join-error", { role: "alert" });
    const submit = async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name) { input.focus(); return; }
      try {
        const made = await signIn(name);
        s.selfId = made.id;
        spaces.selfId = made.id;
        start();
      } catch (err) {
        error.textContent = err.message;
      }
    };
    body.replaceChildren(h("form.card.join-name#name-form", { onsubmit: submit },
      h("h2", {}, "You're invited to a live room"),
      h("label", { for: "join-name" }, "Your display name"),
      h("div.row", {}, input, h("button.primary#join-room", { type: "submit" }, "Join")),
      error));
    input.focus();
  }

  if (identity) start();
  else askName();

  async function start() {
    body.replaceChildren();
    try {
      const joined = await join();
      spaces.selfId = joined.selfId;
      s.presence = new Presence(roomId, presenceHandlers);
      s.meter = new SpeakingMeter({
        getListener: () => s.listener, getSpeaker: () => s.speaker, selfId: s.selfId,
        onchange: markSpeaking,
      });
      startListener(joined.viewer);
      if (joined.publisher) await startSpeaker(joined.publisher);
    } catch (err) {
      fatal(err);
    }
  }

  return stopAll;
}
