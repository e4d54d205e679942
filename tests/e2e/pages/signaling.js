// Millicast WebSocket signaling (see docs/PROTOCOL.md): JSON frames, commands answered by
// transId, server events pushed with a name. No dependencies, no build step.

export class SignalingError extends Error {
  constructor(command, reason) {
    super(`${command} failed: ${typeof reason === "string" ? reason : JSON.stringify(reason)}`);
    this.command = command;
    this.reason = reason;
  }
}

export class Signaling {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.nextTransId = 0; // counts from 0 per socket, like the SDK
    this.pending = new Map();
    this.eventListeners = new Set();
    this.closeListeners = new Set();
    this.closeInfo = null;
  }

  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => {
        reject(new Error(`websocket ${this.url}: no open within ${timeoutMs} ms`));
        ws.close();
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(this);
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`websocket ${this.url} failed`));
      };
      ws.onmessage = (msg) => this.#onMessage(msg.data);
      ws.onclose = (ev) => {
        clearTimeout(timer);
        this.closeInfo = { code: ev.code, reason: ev.reason };
        for (const { reject: rej, name } of this.pending.values()) {
          rej(new Error(`${name}: websocket closed (${ev.code} ${ev.reason})`));
        }
        this.pending.clear();
        for (const fn of this.closeListeners) fn(this.closeInfo);
      };
    });
  }

  cmd(name, data, timeoutMs = 15000) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`${name}: websocket not open`));
    }
    const transId = this.nextTransId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(transId);
        reject(new Error(`${name}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(transId, {
        name,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.ws.send(JSON.stringify({ type: "cmd", transId, name, data }));
    });
  }

  onEvent(fn) { this.eventListeners.add(fn); }
  onClose(fn) { this.closeListeners.add(fn); }
  close() { if (this.ws) this.ws.close(); }

  #onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      console.error("signaling: bad JSON from server", text);
      return;
    }
    if (msg.type === "event") {
      for (const fn of this.eventListeners) fn(msg.name, msg.data);
      return;
    }
    const entry = this.pending.get(msg.transId);
    if (!entry) {
      console.warn("signaling: reply for unknown transId", text);
      return;
    }
    this.pending.delete(msg.transId);
    if (msg.type === "response") entry.resolve(msg.data);
    else if (msg.type === "error") entry.reject(new SignalingError(entry.name, msg.data));
    else entry.reject(new Error(`${entry.name}: unexpected frame type ${msg.type}`));
  }
}

// The SDK opens `urls[0] + "?token=" + jwt`.
export function withToken(url, token) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}
