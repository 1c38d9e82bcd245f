// Thin client for /api/v1: bearer token, JSON errors turned into exceptions with the reason.
const BASE = "/api/v1";

export class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

// Access tokens live 15 minutes; the rotating refresh token renews them before they end (and once
// after a 401), so a shift is not interrupted by logins. Both stay in this tab's sessionStorage.
const KEYS = ["dd.token", "dd.refresh", "dd.expires", "dd.role", "dd.user"];
export const session = {
  get token() { return sessionStorage.getItem("dd.token"); },
  get refreshToken() { return sessionStorage.getItem("dd.refresh"); },
  get expires() { return Number(sessionStorage.getItem("dd.expires") || 0); },
  get role() { return sessionStorage.getItem("dd.role"); },
  get user() { return sessionStorage.getItem("dd.user"); },
  save(tok) {
    sessionStorage.setItem("dd.token", tok.access_token);
    if (tok.refresh_token) sessionStorage.setItem("dd.refresh", tok.refresh_token);
    sessionStorage.setItem("dd.expires", String(Date.now() + 1000 * (tok.expires_in || 900)));
    sessionStorage.setItem("dd.role", tok.role);
    sessionStorage.setItem("dd.user", tok.username);
  },
  clear() { for (const k of KEYS) sessionStorage.removeItem(k); },
};

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  const r = await fetch(`${BASE}/auth/token`, { method: "POST", body });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const wait = r.headers.get("Retry-After");
    throw new ApiError(r.status, (data.detail || r.statusText) + (r.status === 429 && wait ? ` (${wait} s)` : ""));
  }
  session.save(data);
  return data;
}

// One refresh at a time: concurrent calls share it (a refresh token works once).
let refreshing = null;
export function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      const refresh_token = session.refreshToken;
      if (!refresh_token) return false;
      const r = await fetch(`${BASE}/auth/refresh`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ refresh_token }),
      }).catch(() => null);
      if (!r || !r.ok) return false;
      session.save(await r.json());
      return true;
    })().finally(() => { refreshing = null; });
  }
  return refreshing;
}

const REFRESH_AHEAD_MS = 60_000;
async function freshToken() {
  if (session.refreshToken && session.expires - Date.now() < REFRESH_AHEAD_MS) await refreshSession();
  return session.token;
}
// Keep the token fresh while the page only listens to the event stream.
setInterval(() => { if (session.token) freshToken(); }, 30_000);

// fetch with the bearer token; a 401 is retried once after a refresh.
async function authFetch(path, init = {}) {
  const go = async () => fetch(`${BASE}${path}`, { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${await freshToken()}` } });
  const r = await go();
  if (r.status === 401 && session.refreshToken && (await refreshSession())) return go();
  return r;
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await authFetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, data.detail || r.statusText);
  return data;
}

// Sign out: the server revokes the session (its access and refresh tokens), then this tab forgets them.
export async function logout() {
  const refresh_token = session.refreshToken;
  if (session.token) {
    await fetch(`${BASE}/auth/logout`, {
      method: "POST",
      headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token }),
    }).catch(() => null);
  }
  session.clear();
}

// Raw response (binary payloads such as snapshots); null when the server has none (404).
export async function apiBlob(path) {
  const r = await authFetch(path);
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
  // Each connection opens with a one-use ticket valid 30 s: no lasting token in a URL.
  const open = async () => {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    onState("connecting");
    let ticket;
    try { ({ ticket } = await api("/auth/ws-ticket", { method: "POST" })); }
    catch (err) {
      if (err.status === 401) { stopped = true; onState("closed"); onMessage({ type: "auth_failed" }); return; }
      if (!stopped) setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
      return;
    }
    if (stopped) return;
    ws = new WebSocket(`${proto}://${location.host}${BASE}/events?token=${encodeURIComponent(ticket)}`);
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
