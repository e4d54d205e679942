// Tiny DOM helpers: h("div.card#id", {onclick}, ...children).

export function h(tag, props = {}, ...children) {
  const name = tag.match(/^[a-z0-9]*/i)[0] || "div";
  const el = document.createElement(name);
  const classes = [...tag.matchAll(/\.([\w-]+)/g)].map((m) => m[1]);
  const id = tag.match(/#([\w-]+)/);
  if (classes.length) el.className = classes.join(" ");
  if (id) el.id = id[1];
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.className += " " + value;
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const PALETTE = ["#6d5dfc", "#e8590c", "#0ca678", "#d6336c", "#1c7ed6", "#ae3ec9", "#f08c00", "#2b8a3e"];

function hash(text) {
  let x = 0;
  for (const c of text) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x;
}

export function initials(name) {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

export function avatar(id, name, size = "") {
  return h(`div.avatar${size ? "." + size : ""}`, { style: `--avatar:${PALETTE[hash(id) % PALETTE.length]}` }, initials(name));
}

export const icons = {
  mic: '<svg viewBox="0 0 24 24"><path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.9V21h2v-3.1A7 7 0 0 0 19 11Z"/></svg>',
  micOff: '<svg viewBox="0 0 24 24"><path d="M19 11a7 7 0 0 1-1.2 3.9l-1.5-1.5A5 5 0 0 0 17 11Zm-4 .2L9 5.2V5a3 3 0 0 1 6 0ZM4.3 3 3 4.3l6 6V11a3 3 0 0 0 4.4 2.6l1.6 1.6A5 5 0 0 1 7 11H5a7 7 0 0 0 6 6.9V21h2v-3.1a7 7 0 0 0 3.4-1.3l3.3 3.3 1.3-1.3Z"/></svg>',
  hand: '<svg viewBox="0 0 24 24"><path d="M21 7v10a6 6 0 0 1-6 6h-2.3a6 6 0 0 1-4.3-1.8L2.6 15.3l1.3-1.2a1.5 1.5 0 0 1 2-.1L8 15.6V5a1.5 1.5 0 0 1 3 0v6h1V2.5a1.5 1.5 0 0 1 3 0V11h1V3.5a1.5 1.5 0 0 1 3 0V11h1V7a1.5 1.5 0 0 1 3 0Z"/></svg>',
  leave: '<svg viewBox="0 0 24 24"><path d="M10 17v-3H3v-4h7V7l5 5Zm0-15h9a2 2 0 0 1 2 2v16a2 2 0 0 1-2 2h-9v-2h9V4h-9Z"/></svg>',
  back: '<svg viewBox="0 0 24 24"><path d="M20 11H7.8l5.6-5.6L12 4l-8 8 8 8 1.4-1.4L7.8 13H20Z"/></svg>',
  people: '<svg viewBox="0 0 24 24"><path d="M16 11a3 3 0 1 0-3-3 3 3 0 0 0 3 3Zm-8 0a3 3 0 1 0-3-3 3 3 0 0 0 3 3Zm0 2c-2.3 0-7 1.2-7 3.5V19h14v-2.5C15 14.2 10.3 13 8 13Zm8 0h-1a4.2 4.2 0 0 1 2 3.5V19h6v-2.5c0-2.3-4.7-3.5-7-3.5Z"/></svg>',
};

export function icon(name) {
  const span = h("span.icon");
  span.innerHTML = icons[name];
  return span;
}

export function toast(message, kind = "info") {
  const host = document.getElementById("toasts");
  const el = h(`div.toast.${kind}`, { role: "status" }, message);
  host.append(el);
  setTimeout(() => el.classList.add("gone"), 3500);
  setTimeout(() => el.remove(), 4000);
}

// An in-app dialog (a modal <dialog>, not the browser's confirm()): resolves with the value of
// the button pressed, or null when dismissed (Escape, or `dialog.close()` by the caller).
// buttons: [{label, value, kind}] with kind "primary" | "danger" | "ghost".
export function ask(title, text, buttons, { id } = {}) {
  const dialog = h(`dialog.modal${id ? "#" + id : ""}`, {},
    h("h2", {}, title), text ? h("p", {}, text) : null,
    h("div.modal-actions", {}, ...buttons.map((b) =>
      h(`button.${b.kind || "ghost"}`, { value: b.value, dataset: { answer: b.value }, onclick: () => dialog.close(b.value) }, b.label))));
  document.body.append(dialog);
  const answer = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const value = dialog.returnValue || null;
      dialog.remove();
      resolve(value);
    }, { once: true });
  });
  dialog.answer = answer;
  dialog.showModal();
  return dialog;
}

export async function confirmDialog(title, text, label, kind = "danger") {
  const dialog = ask(title, text, [{ label: "Cancel", value: "" }, { label, value: "yes", kind }]);
  return (await dialog.answer) === "yes";
}
