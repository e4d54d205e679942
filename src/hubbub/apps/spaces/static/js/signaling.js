// Millicast WebSocket signaling (hubbub docs/PROTOCOL.md): JSON frames, commands answered by
// transId, server events pushed by name.

export class SignalingError extends Error {
  constructor(command, reason) {
    super(`${command} failed: ${typeof reason === "string" ? reason : JSON.stringify(reason)}`);
    this.reason = reason;
  }
}

export class Signaling {
  constructor(url) {
    this.url = url;
    this.ws = null;
    this.nextTransId = 0; // counts from 0 per socket, like the SDK
    this.pending = new Map();
    this.onevent = () => {};
    this.onclose = () => {};
    this.closedByUs = false;
  }

  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => { reject(new Error("signaling: no answer")); ws.close(); }, timeoutMs);
      ws.onopen = () => { clearTimeout(timer); resolve(this); };
      ws.onerror = () => { clearTimeout(timer); reject(new Error("signaling: connection failed")); };
      ws.onmessage = (msg) => this.#onMessage(msg.data);
      ws.onclose = (ev) => {
        clearTimeout(timer);
        for (const p of this.pending.values()) p.reject(new Error(`${p.name}: connection closed (${ev.code} ${ev.reason})`));
        this.pending.clear();
        if (!this.closedByUs) this.onclose({ code: ev.code, reason: ev.reason });
      };
    });
  }

  cmd(name, data, timeoutMs = 15000) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`${name}: not connected`));
    const transId = this.nextTransId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(transId); reject(new Error(`${name}: no reply`)); }, timeoutMs);
      this.pending.set(transId, {
        name,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.ws.send(JSON.stringify({ type: "cmd", transId, name, data }));
    });
  }

  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close();
  }

  #onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.type === "event") { this.onevent(msg.name, msg.data); return; }
    const entry = this.pending.get(msg.transId);
    if (!entry) return;
    this.pending.delete(msg.transId);
    if (msg.type === "response") entry.resolve(msg.data);
    else entry.reject(new SignalingError(entry.name, msg.data));
  }
}

// The Director's reply -> the URL the SDK would open: urls[0] + "?token=" + jwt.
export function signalingUrl(director) {
  const url = director.urls[0];
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(director.jwt);
}
