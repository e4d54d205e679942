// The Spaces REST API, the identity kept in localStorage, and the presence socket.

const BASE = new URL(".", location.href.split("#")[0]).pathname.replace(/\/$/, ""); // e.g. /spaces
const IDENTITY_KEY = "hubbub.spaces.identity";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function loadIdentity() {
  try {
    const found = JSON.parse(localStorage.getItem(IDENTITY_KEY) || "null");
    return found && found.id && found.secret ? found : null;
  } catch {
    return null;
  }
}

export function saveIdentity(identity) {
  localStorage.setItem(IDENTITY_KEY, JSON.stringify(identity));
}

export function forgetIdentity() {
  localStorage.removeItem(IDENTITY_KEY);
}

export async function call(method, path, body, identity = loadIdentity()) {
  const headers = { "Content-Type": "application/json" };
  if (identity) headers.Authorization = `Bearer ${identity.secret}`;
  let resp;
  try {
    resp = await fetch(`${BASE}/api${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection.");
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(resp.status, data.error || `request failed (${resp.status})`);
  return data;
}

// A new identity, or the stored one renamed. Returns the identity.
export async function signIn(name) {
  const current = loadIdentity();
  if (current) {
    try {
      const me = await call("PUT", "/me", { name }, current);
      const identity = { ...current, name: me.name };
      saveIdentity(identity);
      return identity;
    } catch (err) {
      if (err.status !== 401) throw err;
      forgetIdentity(); // unknown here (e.g. the server's data was reset): start afresh
    }
  }
  const made = await call("POST", "/users", { name }, null);
  const identity = { id: made.id, name: made.name, secret: made.secret };
  saveIdentity(identity);
  return identity;
}

// Presence: one socket per open room page (or, with roomId null, the lobby's: the server pushes
// the live rooms). Reconnects with backoff and resyncs (the server sends the full room state,
// or the room list, on every connect). Close codes 4xxx are final.
export class Presence {
  constructor(roomId, handlers) {
    this.roomId = roomId;
    this.handlers = handlers; // {message(msg), status(connected), final(code, reason)}
    this.ws = null;
    this.stopped = false;
    this.attempt = 0;
    this.connected = false;
    this.pinger = null;
    this.#open();
  }

  #open() {
    if (this.stopped) return;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${BASE}/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      if (this.roomId === null) {
        ws.send(JSON.stringify({ type: "hello", lobby: true }));
        return;
      }
      const identity = loadIdentity();
      ws.send(JSON.stringify({ type: "hello", roomId: this.roomId, secret: identity ? identity.secret : "" }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!this.connected) {
        this.connected = true;
        this.attempt = 0;
        this.handlers.status(true);
      }
      this.handlers.message(msg);
    };
    ws.onclose = (ev) => {
      const was = this.connected;
      this.connected = false;
      if (this.stopped) return;
      if (ev.code >= 4000 && ev.code < 5000) {
        this.stopped = true;
        this.handlers.final(ev.code, ev.reason);
        return;
      }
      if (was) this.handlers.status(false);
      const delay = Math.min(8000, 500 * 2 ** this.attempt++);
      setTimeout(() => this.#open(), delay);
    };
    clearInterval(this.pinger);
    this.pinger = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.send('{"type":"ping"}');
    }, 25000);
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pinger);
    if (this.ws) this.ws.close();
  }
}
