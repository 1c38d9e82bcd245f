// Thin client for /api/v1: bearer token, JSON errors turned into exceptions with the reason.
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

export const session = {
  get token() { return sessionStorage.getItem("dd.token"); },
  get role() { return sessionStorage.getItem("dd.role"); },
  get user() { return sessionStorage.getItem("dd.user"); },
  save(tok) {
    sessionStorage.setItem("dd.token", tok.access_token);
    sessionStorage.setItem("dd.role", tok.role);
    sessionStorage.setItem("dd.user", tok.username);
  },
  clear() { for (const k of ["dd.token", "dd.role", "dd.user"]) sessionStorage.removeItem(k); },
};

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch(`${BASE}/auth/token`, { method: "POST", body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, data.detail || r.statusText);
  session.save(data);
  return data;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(`${BASE}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, data.detail || r.statusText);
  return data;
}

// Raw response (binary payloads such as snapshots); null when the server has none (404).
export async function apiBlob(path) {
  const r = await fetch(`${BASE}${path}`, { headers: { Authorization: `Bearer ${session.token}` } });
  if (r.status === 404) return null;
  if (!r.ok) throw new ApiError(r.status, r.statusText);
  return r.blob();
}

// Which optional routes this server offers, read once from its OpenAPI schema, so the view
// never calls a route that does not exist (video, snapshots and scenarios arrive over time).
let features = null;
export async function serverFeatures() {
  if (features) return features;
  let paths = [];
  try { paths = Object.keys((await fetch("/openapi.json").then((r) => r.json())).paths || {}); } catch { /* offline */ }
  const has = (re) => paths.some((p) => re.test(p));
  features = {
    snapshot: has(/^\/api\/v1\/drones\/\{[^}]+\}\/snapshot\.jpg$/),
    video: has(/^\/api\/v1\/drones\/\{[^}]+\}\/video\/offer$/),
    cameraVideo: has(/^\/api\/v1\/cameras\/\{[^}]+\}\/video\/offer$/),
    reportSnapshot: has(/^\/api\/v1\/incidents\/\{[^}]+\}\/camera-snapshot\.jpg$/),
    scenarios: has(/^\/api\/v1\/scenarios$/),
    admin: has(/^\/api\/v1\/admin\/users$/),
  };
  return features;
}

// Live events with automatic reconnection; every (re)connect starts from a fresh snapshot.
export function connectEvents(onMessage, onState) {
  let ws, delay = 500, stopped = false;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}${BASE}/events?token=${encodeURIComponent(session.token)}`);
    onState("connecting");
    ws.onopen = () => { delay = 500; onState("open"); };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
    ws.onclose = (e) => {
      onState("closed");
      if (e.code === 4401) { stopped = true; onMessage({ type: "auth_failed" }); return; }
      if (!stopped) setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return () => { stopped = true; ws && ws.close(); };
}
