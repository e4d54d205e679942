// What both pages share: `window.hubbub` (state/error, as tests/helpers/browser.py's
// wait_for_state reads it) and a log of every HTTP exchange the whip-whep client makes.
export const hubbub = { state: "loading", error: null, http: [] };
window.hubbub = hubbub;

// Each fetch as {method, url, status, headers: {location, etag, link}}: the client keeps
// none of its replies, and the tests check what the server answered (201, 204, 200).
const realFetch = window.fetch.bind(window);
window.fetch = async (resource, init = {}) => {
  const entry = { method: init.method || "GET", url: String(resource), status: null };
  hubbub.http.push(entry);
  try {
    const reply = await realFetch(resource, init);
    entry.status = reply.status;
    entry.headers = {
      location: reply.headers.get("location"),
      etag: reply.headers.get("etag"),
      link: reply.headers.get("link"),
    };
    return reply;
  } catch (err) {
    entry.error = String(err);
    throw err;
  }
};

export function fail(err) {
  hubbub.state = "failed";
  hubbub.error = String(err && err.stack ? err.stack : err);
  console.error(hubbub.error);
}

// "connected" once the peer connection is, "closed"/"failed" after.
export function followState(pc) {
  pc.addEventListener("connectionstatechange", () => {
    if (["connected", "failed", "closed"].includes(pc.connectionState)) {
      hubbub.state = pc.connectionState;
    }
  });
}
