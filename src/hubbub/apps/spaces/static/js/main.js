// Spaces web UI: hash routes  #/  (lobby)  and  #/r/<roomId>  (a room).
import { renderLobby } from "./lobby.js";
import { renderRoom } from "./room.js";

window.spaces = { page: null, state: "idle" };
const root = document.getElementById("app");
let cleanup = () => {};
let pendingNotice = null;

function notice(message, kind = "info") {
  pendingNotice = { message, kind };
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  cleanup();
  document.getElementById("toasts").replaceChildren();
  cleanup = () => {};
  const match = location.hash.match(/^#\/r\/([A-Za-z0-9-]{1,64})$/);
  if (match) {
    window.spaces = { page: "room", state: "joining" };
    cleanup = renderRoom(root, match[1], { go, notice });
  } else {
    window.spaces = { page: "lobby", state: "lobby" };
    document.title = "Spaces";
    cleanup = renderLobby(root, { go, notice });
  }
  if (pendingNotice) {
    const banner = document.createElement("div");
    banner.className = `banner ${pendingNotice.kind}`;
    banner.id = "notice";
    banner.setAttribute("role", "alert");
    banner.textContent = pendingNotice.message;
    root.querySelector(".topbar")?.after(banner);
    pendingNotice = null;
  }
}

window.addEventListener("hashchange", route);
route();
