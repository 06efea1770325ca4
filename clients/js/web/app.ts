// app.ts: the Live Dashboard page. Signs in with a token (from the URL
// fragment, which is then removed from the address bar and kept in
// sessionStorage, or pasted), connects to the daemon that served the page
// over WebSocket, and shows room "dashboard": the last five minutes of
// metrics from history, then live; the alerts; who else is watching; the
// connection's state. A client without the admin role sees "Not allowed"
// and nothing of the room (the page never joins it for them).
import { Client, DialogueError, type DialogueEvent, type Gap, type State } from "../src/index.js";
import { TimeChart, WINDOW_S } from "./charts.js";

const ROOM = "dashboard";
const TOKEN_KEY = "dialogue.token";

interface Metric {
  key: string; // epoch:seq
  t: number; // seconds
  cpu: number;
  memory: number;
  requests: number;
  errors: number;
  latency: number;
}

interface Alert {
  key: string;
  id: string;
  severity: string;
  message: string;
  ts: number;
  from: string;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const e = document.getElementById(id);
  if (!e) throw new Error(`page: #${id} is missing`);
  return e as T;
};

// ---- the token: fragment -> sessionStorage, never in a URL ---------------

/** The token of the fragment (#token=...), removed from the address bar. */
function tokenFromFragment(): string | null {
  const h = location.hash.replace(/^#/, "");
  if (!h) return null;
  const t = new URLSearchParams(h).get("token");
  // Out of the address bar and of the history entry either way.
  history.replaceState(null, "", location.pathname + location.search);
  return t && t.trim() ? t.trim() : null;
}

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function storeToken(t: string | null): void {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage off: the token lives as long as the page.
  }
}

// ---- views ------------------------------------------------------------------

type View = "signin" | "denied" | "dash" | "none";

function show(v: View): void {
  for (const id of ["signin", "denied", "dash"]) $(id).hidden = id !== v;
  document.body.dataset.view = v;
}

const CONN_TEXT: Record<State, string> = {
  idle: "not connected", connecting: "connecting…", connected: "live",
  disconnected: "reconnecting…", closed: "not connected",
};

function setConn(s: State, reason: string): void {
  const el = $("conn");
  el.dataset.state = s;
  el.textContent = CONN_TEXT[s];
  el.title = reason;
}

// ---- the dashboard's data ------------------------------------------------------

class Dashboard {
  private metrics: Metric[] = [];
  private readonly seen = new Set<string>();
  private alerts: Alert[] = [];
  private readonly alertKeys = new Set<string>();
  private charts: { cpu: TimeChart; memory: TimeChart; traffic: TimeChart; latency: TimeChart } | null = null;
  private drawPending = false;
  // The list is rebuilt only when it changed, not on every metrics update.
  private alertsDirty = true;
  // Events the client delivered (not from history requests): one seen
  // twice is a client fault, shown for the browser tests.
  private readonly delivered = new Set<string>();
  private liveDupes = 0;
  lastSeq = 0n;
  updates = 0;

  /** Counts a delivered event; then adds it like any other. */
  live(ev: DialogueEvent): void {
    const key = `${ev.room}:${ev.epoch}:${ev.seq}`;
    if (this.delivered.has(key)) this.liveDupes++;
    this.delivered.add(key);
    // Enough to catch a replay after a reconnect; bounded for a wall screen left on for weeks.
    if (this.delivered.size > 2000) this.delivered.delete(this.delivered.values().next().value!);
    if (ev.event === "metrics:update") this.addMetric(ev);
    else if (ev.event === "alert:triggered") this.addAlert(ev);
  }

  /** Everything forgotten: the room's history was lost (a new epoch). */
  reset(): void {
    this.metrics = [];
    this.seen.clear();
    this.alerts = [];
    this.alertKeys.clear();
    this.delivered.clear();
    this.alertsDirty = true;
    this.draw();
  }

  private ensureCharts(): void {
    if (this.charts) return;
    this.charts = {
      cpu: new TimeChart($("chart-cpu"), [{ label: "CPU", color: "#4ea1ff", fill: "rgba(78,161,255,.15)", unit: "%", max: 100 }]),
      memory: new TimeChart($("chart-memory"), [{ label: "Memory", color: "#a371f7", fill: "rgba(163,113,247,.15)", unit: "%", max: 100 }]),
      traffic: new TimeChart($("chart-traffic"), [
        { label: "Requests/s", color: "#3fb950", unit: "" },
        { label: "Errors/s", color: "#f85149", unit: "" },
      ]),
      latency: new TimeChart($("chart-latency"), [{ label: "Latency", color: "#d29922", unit: " ms" }]),
    };
  }

  /** A metrics:update (live or from history); the same event twice counts once. */
  addMetric(ev: DialogueEvent): void {
    const key = `${ev.epoch}:${ev.seq}`;
    if (this.seen.has(key) || !ev.data || typeof ev.data !== "object" || Array.isArray(ev.data)) return;
    this.seen.add(key);
    const d = ev.data as Record<string, unknown>;
    const num = (k: string) => (typeof d[k] === "number" ? (d[k] as number) : 0);
    const m: Metric = {
      key, t: ev.ts / 1000, cpu: num("cpu"), memory: num("memory"), requests: num("requests"),
      errors: num("errors"), latency: num("latency"),
    };
    // History may come after live events: keep the series in time order.
    let i = this.metrics.length;
    while (i > 0 && this.metrics[i - 1].t > m.t) i--;
    this.metrics.splice(i, 0, m);
    if (ev.seq > this.lastSeq) this.lastSeq = ev.seq;
    this.updates++;
    this.schedule();
  }

  addAlert(ev: DialogueEvent): void {
    const key = `${ev.epoch}:${ev.seq}`;
    if (this.alertKeys.has(key) || !ev.data || typeof ev.data !== "object" || Array.isArray(ev.data)) return;
    this.alertKeys.add(key);
    const d = ev.data as Record<string, unknown>;
    const ts = typeof d.timestamp === "string" && /^\d+$/.test(d.timestamp) ? Number(d.timestamp) : ev.ts;
    this.alerts.push({
      key, id: String(d.alertId ?? ""), severity: String(d.severity ?? "low"), message: String(d.message ?? ""),
      ts, from: ev.from,
    });
    this.alerts.sort((a, b) => b.ts - a.ts);
    this.alertsDirty = true;
    if (this.alerts.length > 100) {
      for (const a of this.alerts.splice(100)) this.alertKeys.delete(a.key);
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.drawPending) return;
    this.drawPending = true;
    requestAnimationFrame(() => {
      this.drawPending = false;
      this.draw();
    });
  }

  draw(): void {
    const dash = $("dash");
    if (dash.hidden) return;
    this.ensureCharts();
    const cut = Date.now() / 1000 - WINDOW_S;
    while (this.metrics.length && this.metrics[0].t < cut) this.seen.delete(this.metrics.shift()!.key);
    const ms = this.metrics;
    const xs = ms.map(m => m.t);
    const c = this.charts!;
    c.cpu.set(xs, [ms.map(m => m.cpu)]);
    c.memory.set(xs, [ms.map(m => m.memory)]);
    c.traffic.set(xs, [ms.map(m => m.requests), ms.map(m => m.errors)]);
    c.latency.set(xs, [ms.map(m => m.latency)]);
    const last = ms[ms.length - 1];
    const f = (v: number | undefined, unit: string, digits = 1) => (v === undefined ? "–" : `${v.toFixed(digits)}${unit}`);
    $("v-cpu").textContent = f(last?.cpu, " %");
    $("v-memory").textContent = f(last?.memory, " %");
    $("v-requests").textContent = f(last?.requests, "", 0);
    $("v-errors").textContent = f(last?.errors, "", 0);
    $("v-latency").textContent = f(last?.latency, " ms", 2);
    dash.dataset.lastSeq = String(this.lastSeq);
    dash.dataset.updates = String(this.updates);
    dash.dataset.points = String(ms.length);
    dash.dataset.liveDupes = String(this.liveDupes);
    if (this.alertsDirty) this.drawAlerts();
  }

  private drawAlerts(): void {
    this.alertsDirty = false;
    const ol = $("alerts");
    const items = this.alerts.map(a => {
      const li = document.createElement("li");
      const sev = ["low", "medium", "high", "critical"].includes(a.severity) ? a.severity : "low";
      li.className = `sev-${sev}`;
      li.dataset.alertId = a.id;
      li.dataset.severity = sev;
      const badge = document.createElement("span");
      badge.className = "sev";
      badge.textContent = sev;
      const msg = document.createElement("span");
      msg.className = "msg";
      msg.textContent = a.message;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = `${new Date(a.ts).toLocaleTimeString()} · ${a.id} · from ${a.from}`;
      li.append(badge, msg, meta);
      return li;
    });
    ol.replaceChildren(...items);
    $("alert-count").textContent = String(this.alerts.length);
    $("no-alerts").hidden = this.alerts.length > 0;
  }
}

// ---- presence: who else is watching ----------------------------------------

class Presence {
  private members = new Map<string, number>();
  private me = "";

  setMe(userId: string): void {
    this.me = userId;
  }

  /** The room's member list (user ids, one per connection). */
  set(ids: string[]): void {
    const m = new Map<string, number>();
    for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
    this.members = m;
    this.draw();
  }

  /**
   * A presence:join or presence:leave: the sessions that came or went.
   * Returns false when the list no longer adds up to the room's count
   * (changes left out, or a change missed): then ask for the list again.
   */
  change(joined: boolean, ids: string[], count: number, more: number): boolean {
    for (const id of ids) {
      const n = (this.members.get(id) ?? 0) + (joined ? 1 : -1);
      if (n > 0) this.members.set(id, n);
      else this.members.delete(id);
    }
    this.draw();
    let total = 0;
    for (const n of this.members.values()) total += n;
    return more === 0 && total === count;
  }

  clear(): void {
    this.members.clear();
    this.draw();
  }

  private draw(): void {
    const ids = [...this.members.keys()].sort();
    const items = ids.map(id => {
      const li = document.createElement("li");
      li.dataset.user = id;
      if (id === this.me) li.className = "me";
      li.textContent = id;
      const n = this.members.get(id) ?? 1;
      if (n > 1) {
        const s = document.createElement("span");
        s.className = "n";
        s.textContent = ` ×${n}`;
        li.append(s);
      }
      return li;
    });
    $("presence").replaceChildren(...items);
    $("presence-count").textContent = String(ids.length);
  }
}

// ---- the session ---------------------------------------------------------------

let client: Client | null = null;
const dash = new Dashboard();
const presence = new Presence();

function wsUrl(): string {
  const u = new URL("/v1/ws", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  u.hash = "";
  u.search = "";
  return u.toString();
}

function signinView(error = ""): void {
  show("signin");
  const e = $("signin-error");
  e.textContent = error;
  e.hidden = !error;
  $("signout").hidden = true;
  $("who").textContent = "";
}

function deniedView(text: string): void {
  show("denied");
  $("denied-text").textContent = text;
}

async function stop(): Promise<void> {
  const c = client;
  client = null;
  if (c) await c.close();
}

async function signOut(): Promise<void> {
  storeToken(null);
  await stop();
  dash.reset();
  presence.clear();
  setConn("idle", "");
  signinView();
}

async function refreshPresence(c: Client): Promise<void> {
  try {
    const rooms = await c.listRooms({ members: true });
    const r = rooms.find(x => x.id === ROOM);
    if (r && c === client) presence.set(r.memberIds);
  } catch {
    // Not connected just now: the next round asks again.
  }
}

/** The last five minutes of metrics and the recent alerts, from the room's history. */
async function loadHistory(c: Client): Promise<void> {
  const [m, a] = await Promise.all([
    c.history(ROOM, { event: "metrics:update", limit: WINDOW_S }),
    c.history(ROOM, { event: "alert:triggered", limit: 100 }),
  ]);
  if (c !== client) return;
  for (const ev of m.events) dash.addMetric(ev);
  for (const ev of a.events) dash.addAlert(ev);
}

async function start(token: string): Promise<void> {
  await stop();
  const c = new Client({ url: wsUrl(), token, clientName: "dashboard-page" });
  client = c;
  c.on(ROOM, "metrics:update", ev => dash.live(ev));
  c.on(ROOM, "alert:triggered", ev => dash.live(ev));
  // The daemon's presence events (who came, who went), subscribed to by
  // name below; the client restores the subscription after a reconnect.
  c.on(ROOM, "presence:join", ev => presenceEvent(c, ev, true));
  c.on(ROOM, "presence:leave", ev => presenceEvent(c, ev, false));
  c.onGap((g: Gap) => {
    if (g.room !== ROOM || !g.epochChanged) return;
    // The room's history was lost: rebuild from what follows.
    dash.reset();
  });
  c.onState((s, reason) => {
    if (c !== client) return;
    setConn(s, reason);
    if (s === "connected") void refreshPresence(c);
  });
  setConn("connecting", "");
  show("none");
  let w;
  try {
    w = await c.connect();
  } catch (e) {
    if (c !== client) return;
    await stop();
    storeToken(null);
    const msg = e instanceof Error ? e.message : String(e);
    signinView(`Sign-in failed: ${msg}`);
    return;
  }
  if (c !== client) return;
  $("who").textContent = w.userId ? `signed in as ${w.userId}` : "anonymous";
  $("signout").hidden = false;
  presence.setMe(w.userId);
  if (!w.roles.includes("admin")) {
    await stop();
    setConn("closed", "");
    deniedView(`You are signed in as ${w.userId || "an anonymous client"}` +
      `${w.roles.length ? ` with the role${w.roles.length > 1 ? "s" : ""} ${w.roles.join(", ")}` : " without a role"}; ` +
      "this dashboard is for administrators (role admin). Nothing of it is shown.");
    return;
  }
  try {
    if (!c.autoJoined(ROOM)) await c.join(ROOM);
  } catch (e) {
    if (c !== client) return;
    await stop();
    if (e instanceof DialogueError && e.code === "PERMISSION_DENIED") {
      deniedView(`The server does not let ${w.userId} watch the dashboard: ${e.serverMessage}`);
    } else {
      signinView(`Cannot open the dashboard: ${e instanceof Error ? e.message : String(e)}`);
    }
    return;
  }
  show("dash");
  dash.draw();
  try {
    await loadHistory(c);
  } catch (e) {
    console.warn("dashboard: history:", e);
  }
  try {
    await c.subscribe(ROOM, ["presence:join", "presence:leave"]);
  } catch (e) {
    console.warn("dashboard: presence events:", e);
  }
  // The list as it is now; the events keep it up to date.
  void refreshPresence(c);
}

function presenceEvent(c: Client, ev: DialogueEvent, joined: boolean): void {
  const d = (ev.data && typeof ev.data === "object" && !Array.isArray(ev.data)) ? ev.data as Record<string, unknown> : {};
  const ids = Array.isArray(d.members) ? d.members.map(String) : [];
  const count = typeof d.count === "number" ? d.count : -1;
  const more = typeof d.more === "number" ? d.more : 0;
  if (!presence.change(joined, ids, count, more)) void refreshPresence(c);
}

function main(): void {
  $("signin-form").addEventListener("submit", ev => {
    ev.preventDefault();
    const t = ($("token") as HTMLTextAreaElement).value.trim();
    if (!t) return;
    ($("token") as HTMLTextAreaElement).value = "";
    storeToken(t);
    void start(t);
  });
  $("signout").addEventListener("click", () => void signOut());
  $("denied-signout").addEventListener("click", () => void signOut());
  const fromUrl = tokenFromFragment();
  if (fromUrl) storeToken(fromUrl);
  const t = fromUrl ?? storedToken();
  if (t) void start(t);
  else signinView();
}

main();
