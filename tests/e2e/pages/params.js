// Parameters from the page URL: `q("multiplex", "0")`, flags are "1"/"0".
const params = new URLSearchParams(location.search);
export function q(name, fallback = null) {
  const v = params.get(name);
  return v === null || v === "" ? fallback : v;
}
export function flag(name, fallback) {
  const v = params.get(name);
  return v === null || v === "" ? fallback : v === "1" || v === "true";
}
export function list(name) {
  const v = params.get(name);
  return v ? v.split(",").filter((s) => s !== "") : [];
}
