// The lobby: pick a display name, start a room, join a live one.
import { Presence, call, loadIdentity, signIn } from "./api.js";
import { avatar, h, icon, toast } from "./ui.js";

export function renderLobby(root, { go, notice }) {
  const identity = loadIdentity();
  const nameInput = h("input#name", {
    type: "text", maxLength: 40, placeholder: "Your name", autocomplete: "nickname",
    value: identity ? identity.name : "",
  });
  const roomInput = h("input#room-name", { type: "text", maxLength: 80, placeholder: "What do you want to talk about?" });
  const audioOnly = h("input#audio-only", { type: "checkbox" });
  const list = h("div.room-list#rooms");
  const error = h("p.form-error#lobby-error", { role: "alert" });

  async function ensureIdentity() {
    const name = nameInput.value.trim();
    if (!name) {
      nameInput.focus();
      throw new Error("Pick a display name first.");
    }
    const current = loadIdentity();
    if (current && current.name === name) return current;
    return signIn(name);
  }

  // The live rooms, pushed by the server whenever they change (no name needed to see them).
  function showRooms(rooms) {
    window.spaces.rooms = rooms;
    list.replaceChildren(...(rooms.length ? rooms.map(roomCard) : [h("p.empty", {}, "No live rooms yet. Start one!")]));
  }

  const lobby = new Presence(null, {
    message: (msg) => { if (msg.type === "rooms") showRooms(msg.rooms); },
    status: (up) => { if (!up) list.prepend(h("p.empty.stale", {}, "Reconnecting…")); },
    final: () => {},
  });

  function roomCard(room) {
    const people = room.online; // connected now
    return h("article.room-card", { dataset: { roomId: room.id } },
      h("div.room-card-main", {},
        h("h3", {}, room.name),
        h("p.muted", {}, `Hosted by ${room.ownerName}`, room.video ? " · with video" : " · audio only"),
        h("div.speaker-names", {}, ...room.speakers.slice(0, 4).map((n) => h("span.chip", {}, n))),
      ),
      h("div.room-card-side", {},
        h("span.count", { title: "people in the room" }, icon("people"), String(people)),
        h("button.primary.join", { onclick: () => join(room.id) }, "Join"),
      ),
    );
  }

  async function join(roomId) {
    error.textContent = "";
    try {
      await ensureIdentity();
      go(`#/r/${roomId}`);
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function create(ev) {
    ev.preventDefault();
    error.textContent = "";
    try {
      await ensureIdentity();
      const name = roomInput.value.trim();
      if (!name) {
        roomInput.focus();
        throw new Error("Give your room a topic.");
      }
      const { room } = await call("POST", "/rooms", { name, audioOnly: audioOnly.checked });
      go(`#/r/${room.id}`);
    } catch (err) {
      error.textContent = err.message;
    }
  }

  async function saveName(ev) {
    ev.preventDefault();
    error.textContent = "";
    try {
      const id = await ensureIdentity();
      toast(`You are ${id.name}`);
      renderWho();
    } catch (err) {
      error.textContent = err.message;
    }
  }

  const who = h("div.who");
  function renderWho() {
    const id = loadIdentity();
    who.replaceChildren(...(id ? [avatar(id.id, id.name, "small"), h("span", {}, id.name)] : []));
  }
  renderWho();

  root.replaceChildren(
    h("header.topbar", {}, h("div.brand", {}, h("span.logo", {}, "◉"), "Spaces"), who),
    h("main.lobby", {},
      h("section.hero", {},
        h("h1", {}, "Drop in, speak up."),
        h("p.muted", {}, "Live audio rooms. Start one, or join a conversation already happening."),
      ),
      h("div.lobby-grid", {},
        h("div.stack", {},
          h("form.card#profile", { onsubmit: saveName },
            h("label", { for: "name" }, "Display name"),
            h("div.row", {}, nameInput, h("button.secondary", { type: "submit" }, "Save")),
          ),
          h("form.card#create", { onsubmit: create },
            h("label", { for: "room-name" }, "Start a room"),
            roomInput,
            h("label.check", {}, audioOnly, "Audio only (no host video)"),
            h("button.primary.wide#create-room", { type: "submit" }, "Start room"),
          ),
          error,
        ),
        h("section.card.rooms", {},
          h("div.section-title", {}, h("h2", {}, "Live now"), h("span.live-dot", {}, "LIVE")),
          list,
        ),
      ),
    ),
  );
  return () => lobby.stop();
}
