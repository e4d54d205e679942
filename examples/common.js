// Shared by the example pages: load the Millicast SDK served by hubbub, read the form, log.
// The SDK is served at /examples/sdk/millicast.mjs from node_modules (`npm ci` in the checkout);
// hubbub does not bundle it.
export const params = new URLSearchParams(location.search);

export async function loadSdk() {
  try {
    return await import("/examples/sdk/millicast.mjs");
  } catch (e) {
    throw new Error("the Millicast SDK is not served here: run `npm ci` in the hubbub checkout " +
      "and restart `hubbub serve` from it (" + e.message + ")");
  }
}

// Fill every <input name=...>/<select name=...> from the query string (shareable links).
export function prefill(form) {
  for (const el of form.elements) {
    if (!el.name || !params.has(el.name)) continue;
    if (el.type === "checkbox") el.checked = params.get(el.name) === "1";
    else el.value = params.get(el.name);
  }
}

export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value.trim();
  }
  return out;
}

export function logger(list) {
  return (text) => {
    const li = document.createElement("li");
    li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    list.prepend(li);
    while (list.children.length > 200) list.lastChild.remove();
  };
}

// The Director is the hubbub node serving this page unless ?director= says otherwise.
export function directorUrl() {
  return params.get("director") || location.origin;
}
