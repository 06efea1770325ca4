// client.test.mjs: the JavaScript client (clients/js) against a real
// dialogued over its WebSocket endpoint: connect with a token, the sync
// batch and live events decoded with the server's schema, triggers with
// Acks and refusals, handlers per room and event, subscriptions, history,
// and reconnect with recovery across daemon restarts.
// Run by tests/integration/test_js_client.py (node --test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CA, Daemon, alert, dashboardConfig, loadClient, sleep, token, waitFor } from "./lib/harness.mjs";

const T = { timeout: 30000 };
let D;
let Client, DialogueError;
const clients = [];

function client(tok, extra = {}) {
  const c = new Client({ url: D.url, token: tok, caFile: CA, clientName: "js-test", ...extra });
  clients.push(c);
  return c;
}

before(async () => {
  ({ Client, DialogueError } = await loadClient());
  D = await new Daemon(dashboardConfig()).start();
});

after(async () => {
  await Promise.all(clients.map(c => c.close()));
  await D?.stop();
});

test("admin: Welcome, auto-joined dashboard, sync batch and live metrics decoded", T, async () => {
  const c = client(token("ada", "admin"));
  const metrics = [];
  c.on("dashboard", "metrics:update", ev => metrics.push(ev));
  const states = [];
  c.onState(s => states.push(s));
  const w = await c.connect();
  assert.equal(w.userId, "ada");
  assert.equal(w.identityKind, "token");
  assert.deepEqual(w.roles, ["admin"]);
  assert.deepEqual(w.autoJoined.map(j => j.room), ["dashboard"]);
  assert.equal(c.autoJoined("dashboard"), true);
  assert.equal(c.autoJoined("lab"), false);
  assert.deepEqual(states, ["connecting", "connected"]);
  // The daemon publishes metrics every second: at least two within 4 s.
  assert.ok(await waitFor(() => metrics.length >= 2, 4000), `only ${metrics.length} metrics:update`);
  for (const ev of metrics) {
    assert.equal(ev.room, "dashboard");
    assert.equal(ev.from, "system");
    assert.equal(ev.fromKind, "server");
    assert.equal(ev.decodeError, undefined);
    assert.equal(typeof ev.data.cpu, "number");
    assert.ok(ev.data.cpu >= 0 && ev.data.cpu <= 100, `cpu ${ev.data.cpu}`);
    assert.ok(ev.data.memory > 0 && ev.data.memory <= 100, `memory ${ev.data.memory}`);
    for (const k of ["requests", "errors", "latency"]) assert.equal(typeof ev.data[k], "number", k);
    assert.equal(typeof ev.seq, "bigint");
    assert.ok(ev.payload instanceof Uint8Array && ev.payload.length > 0);
    assert.ok(Math.abs(ev.ts - Date.now()) < 60000);
  }
  for (let i = 1; i < metrics.length; i++) assert.ok(metrics[i].seq > metrics[i - 1].seq, "seq order");
  const rtt = await c.ping();
  assert.ok(rtt >= 0);
});

test("sync batch of an auto-joined room reaches handlers registered before connect, decoded", T, async () => {
  // A publisher's alert is kept in history; a new admin gets it from the sync batch.
  const pub = client(token("pub1", "publisher"));
  await pub.connect();
  await pub.join("dashboard");
  const a = alert("sync-1", "critical", "kept for the next joiner");
  const ack = await pub.trigger("dashboard", "alert:triggered", a);
  const c = client(token("ada2", "admin"));
  const seen = [];
  c.on("dashboard", "alert:triggered", ev => seen.push(ev));
  await c.connect();
  assert.ok(await waitFor(() => seen.some(e => e.seq === ack.seq), 5000), "the kept alert was not delivered");
  const ev = seen.find(e => e.seq === ack.seq);
  assert.deepEqual(ev.data, a);
  assert.equal(ev.from, "pub1");
  assert.equal(ev.fromKind, "token");
});

test("trigger: resolves on the Ack; every member gets the event once, decoded", T, async () => {
  const sub = client(token("watcher", "viewer"));
  const pub = client(token("pub2", "viewer"));
  await Promise.all([sub.connect(), pub.connect()]);
  const j = await sub.join("lab");
  assert.equal(j.room, "lab");
  assert.deepEqual(j.subscriptions, ["*"]);
  await pub.join("lab");
  const got = [];
  sub.on("lab", null, ev => got.push(ev));
  const acks = [];
  for (let i = 0; i < 5; i++) acks.push(await pub.trigger("lab", "alert:triggered", alert(`t${i}`, "low")));
  for (let i = 1; i < acks.length; i++) assert.equal(acks[i].seq, acks[i - 1].seq + 1n);
  assert.ok(acks.every(a => a.recipients === 2), `recipients ${acks.map(a => a.recipients)}`);
  assert.ok(await waitFor(() => got.length >= 5, 5000));
  await sleep(200);
  assert.deepEqual(got.map(e => e.data.alertId), ["t0", "t1", "t2", "t3", "t4"]);
  assert.deepEqual(got.map(e => e.seq), acks.map(a => a.seq));
  // Raw bytes are sent as they are.
  const s = await pub.schema();
  const raw = s.encode("alert:triggered", alert("raw"));
  const ack = await pub.trigger("lab", "alert:triggered", raw);
  assert.ok(await waitFor(() => got.some(e => e.seq === ack.seq)));
  assert.deepEqual(got.find(e => e.seq === ack.seq).payload, raw);
});

test("trigger refused: the promise rejects with the server's status and message", T, async () => {
  const pub = client(token("pub3", "viewer"));
  await pub.connect();
  // Not a member yet.
  let e = await pub.trigger("lab", "metrics:update", { cpu: 1, memory: 1, requests: 0, errors: 0, latency: 0 })
    .then(() => null, x => x);
  assert.ok(e instanceof DialogueError, String(e));
  assert.equal(e.status, 9);
  assert.equal(e.code, "FAILED_PRECONDITION");
  assert.match(e.message, /not a member of room lab/);
  await pub.join("lab");
  // Outside the schema's rules: the server names the field.
  e = await pub.trigger("lab", "metrics:update", { cpu: 150, memory: 1, requests: 0, errors: 0, latency: 0 })
    .then(() => null, x => x);
  assert.equal(e?.status, 3, String(e));
  assert.equal(e.code, "INVALID_ARGUMENT");
  assert.match(e.serverMessage, /cpu: 150 is above max 100/);
  // An object that does not fit the message is refused before sending.
  e = await pub.trigger("lab", "alert:triggered", { nope: 1 }).then(() => null, x => x);
  assert.equal(e?.code, "INVALID", String(e));
  assert.match(e.message, /nope/);
  // A viewer may not join the dashboard.
  e = await pub.join("dashboard").then(() => null, x => x);
  assert.equal(e?.code, "PERMISSION_DENIED", String(e));
  e = await pub.join("no-such-room").then(() => null, x => x);
  assert.equal(e?.code, "NOT_FOUND", String(e));
});

test("handlers per room and per event; subscribe and unsubscribe; leave", T, async () => {
  const sub = client(token("sub4", "viewer"));
  const pub = client(token("pub4", "viewer"));
  await Promise.all([sub.connect(), pub.connect()]);
  await sub.join("lab");
  await pub.join("lab");
  const alerts = [], any = [], other = [];
  sub.on("lab", "alert:triggered", ev => alerts.push(ev.data.alertId));
  const offAny = sub.on(null, null, ev => any.push(ev.event));
  sub.on("dashboard", null, ev => other.push(ev));
  const m = { cpu: 5, memory: 6, requests: 7, errors: 0, latency: 0.5 };
  let j = await sub.unsubscribe("lab", ["metrics:update"]);
  assert.deepEqual(j.subscriptions, ["alert:triggered"]);
  await pub.trigger("lab", "metrics:update", m);
  await pub.trigger("lab", "alert:triggered", alert("h1"));
  assert.ok(await waitFor(() => alerts.length === 1));
  await sleep(200);
  assert.deepEqual(any, ["alert:triggered"], "an unsubscribed event was delivered");
  j = await sub.subscribe("lab", "*");
  assert.deepEqual(j.subscriptions, ["*"]);
  offAny();
  await pub.trigger("lab", "metrics:update", m);
  await pub.trigger("lab", "alert:triggered", alert("h2"));
  assert.ok(await waitFor(() => alerts.length === 2));
  await sleep(200);
  assert.deepEqual(alerts, ["h1", "h2"]);
  assert.deepEqual(any, ["alert:triggered"], "a removed handler was called");
  assert.deepEqual(other, []);
  await sub.leave("lab");
  assert.deepEqual(sub.joinedRooms, []);
  await pub.trigger("lab", "alert:triggered", alert("h3"));
  await sleep(300);
  assert.deepEqual(alerts, ["h1", "h2"], "an event after leave was delivered");
});

test("history: newest first by index, then by seq; rooms and members", T, async () => {
  const pub = client(token("pub5", "viewer"));
  await pub.connect();
  await pub.join("lab");
  const acks = [];
  for (let i = 0; i < 4; i++) acks.push(await pub.trigger("lab", "alert:triggered", alert(`hist${i}`)));
  const h = await pub.history("lab", { event: "alert:triggered", limit: 3 });
  assert.equal(h.room, "lab");
  assert.equal(h.complete, true);
  assert.deepEqual(h.events.map(e => e.data.alertId), ["hist1", "hist2", "hist3"]);
  const s = await pub.history("lab", { event: "alert:triggered", sinceSeq: acks[1].seq });
  assert.deepEqual(s.events.map(e => e.seq), [acks[2].seq, acks[3].seq]);
  assert.equal(s.epoch, s.events[0].epoch);
  const rooms = await pub.listRooms({ members: true });
  const lab = rooms.find(r => r.id === "lab");
  assert.ok(lab, JSON.stringify(rooms.map(r => r.id)));
  assert.ok(lab.memberIds.includes("pub5"), JSON.stringify(lab));
  assert.ok(!rooms.some(r => r.id === "dashboard"), "a viewer must not see the dashboard room");
});

test("a bad token: connect rejects with UNAUTHENTICATED and no retry follows", T, async () => {
  const c = client("not-a-jwt", { backoffMinMs: 50 });
  const states = [];
  c.onState((s, why) => states.push([s, why]));
  const e = await c.connect().then(() => null, x => x);
  assert.ok(e, "connect resolved with a bad token");
  assert.match(e.message, /server refused Hello: UNAUTHENTICATED/);
  await sleep(500);
  assert.deepEqual(states.map(s => s[0]), ["connecting", "disconnected"]);
  assert.equal(c.state, "disconnected");
  const r = await c.join("lab").then(() => null, x => x);
  assert.equal(r?.code, "CLOSED");
});

test("requests wait for the connection attempt; none is made while disconnected", T, async () => {
  const c = client(token("early", "viewer"));
  let e = await c.join("lab").then(() => null, x => x);
  assert.equal(e?.code, "CLOSED", "a request before connect() must fail at once");
  const p = c.connect();
  const j = c.join("lab"); // made while connecting: sent after the Welcome
  await p;
  assert.equal((await j).room, "lab");
  await c.close();
  assert.equal(c.state, "closed");
  e = await c.ping().then(() => null, x => x);
  assert.equal(e?.code, "CLOSED");
});

async function restartCase(store) {
  const dir = mkdtempSync(join(tmpdir(), "dlg-js-store-"));
  const d = await new Daemon(dashboardConfig({ store, storePath: store === "sqlite" ? join(dir, "h.db") : "" })).start();
  const opts = { url: d.url, caFile: CA };
  // The subscriber retries every 4 s: the events "during" are published
  // while it is away, and come back only through recovery.
  const sub = new Client({ ...opts, token: token("rsub", "viewer"), backoffMinMs: 4000, backoffMaxMs: 4000, backoffJitter: 0 });
  const pub = new Client({ ...opts, token: token("rpub", "viewer"), reconnect: false });
  clients.push(sub);
  const got = [], gaps = [], states = [];
  sub.on("lab", "alert:triggered", ev => got.push([ev.epoch, ev.seq, ev.data.alertId]));
  sub.onGap(g => gaps.push(g));
  sub.onState(s => states.push(s));
  try {
    await sub.connect();
    await sub.join("lab");
    await pub.connect();
    await pub.join("lab");
    for (let i = 0; i < 3; i++) await pub.trigger("lab", "alert:triggered", alert(`before${i}`));
    assert.ok(await waitFor(() => got.length === 3));
    await pub.close();
    await d.stop();
    assert.ok(await waitFor(() => sub.state !== "connected", 5000));
    // Published while the subscriber is away: the new daemon comes up on
    // the same port and a publisher writes before the subscriber's retry.
    await d.start();
    const pub2 = new Client({ ...opts, token: token("rpub", "viewer"), reconnect: false });
    await pub2.connect();
    await pub2.join("lab");
    for (let i = 0; i < 3; i++) await pub2.trigger("lab", "alert:triggered", alert(`during${i}`));
    assert.notEqual(sub.state, "connected", "the subscriber came back before the events it was to miss");
    assert.equal(got.length, 3);
    assert.ok(await waitFor(() => sub.state === "connected", 10000), "the subscriber did not reconnect");
    for (let i = 0; i < 3; i++) await pub2.trigger("lab", "alert:triggered", alert(`after${i}`));
    assert.ok(await waitFor(() => got.length >= 9, 5000), JSON.stringify(got.map(g => g[2])));
    await sleep(300);
    await pub2.close();
    return { got, gaps, states };
  } finally {
    await sub.close();
    await d.stop();
  }
}

test("daemon restart, SQLite store: reconnect, rejoin with recovery, no event missing or twice, no gap", T, async () => {
  const { got, gaps, states } = await restartCase("sqlite");
  assert.deepEqual(got.map(g => g[2]),
    ["before0", "before1", "before2", "during0", "during1", "during2", "after0", "after1", "after2"]);
  assert.equal(new Set(got.map(g => g[0])).size, 1, "the epoch changed across a clean restart");
  for (let i = 1; i < got.length; i++) assert.equal(got[i][1], got[i - 1][1] + 1n);
  assert.deepEqual(gaps, []);
  assert.ok(states.includes("disconnected") && states.at(-1) === "closed", states.join(","));
});

test("daemon restart, memory store: the gap callback reports the new epoch, then the kept events", T, async () => {
  const { got, gaps } = await restartCase("memory");
  assert.equal(gaps.length, 1, JSON.stringify(gaps.map(g => g.reason)));
  assert.equal(gaps[0].room, "lab");
  assert.equal(gaps[0].epochChanged, true);
  assert.match(gaps[0].reason, /epoch changed from \d+ to \d+/);
  assert.deepEqual(got.map(g => g[2]),
    ["before0", "before1", "before2", "during0", "during1", "during2", "after0", "after1", "after2"]);
  assert.equal(got[3][0], gaps[0].epoch);
  assert.equal(got[3][1], 1n, "the new epoch starts at seq 1");
});

test("backoff: doubles from min, stops at max, jitter takes at most its share", async () => {
  const { backoffMs } = await loadClient();
  assert.deepEqual([0, 1, 2, 3, 9, 60].map(a => backoffMs(100, 1000, 0, a)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoffMs(100, 30000, 0.2, 0, () => 0.999999), 81);
  assert.equal(backoffMs(100, 30000, 0.2, 0, () => 0), 100);
  for (let i = 0; i < 200; i++) {
    const d = backoffMs(100, 30000, 0.2, 3);
    assert.ok(d > 640 && d <= 800, String(d));
  }
  assert.equal(backoffMs(0, 0, 0, 5), 1);
});

test("presence: presence:join and presence:leave (seq 0) reach a member subscribed by name, decoded", T, async () => {
  const watcher = client(token("pw", "viewer"));
  const other = client(token("po", "viewer"));
  await Promise.all([watcher.connect(), other.connect()]);
  await watcher.join("lab");
  const ev = [];
  watcher.on("lab", null, e => { if (e.event.startsWith("presence:")) ev.push(e); });
  const j = await watcher.subscribe("lab", ["presence:join", "presence:leave"]);
  assert.ok(j.subscriptions.includes("presence:join"), JSON.stringify(j.subscriptions));
  // The watcher's position in the room is known (an event went by) before
  // the unnumbered presence events come.
  await watcher.trigger("lab", "alert:triggered", alert("pres-0"));
  // The watcher's own join is reported in the window it fell in (500 ms).
  await sleep(800);
  assert.ok(ev.every(e => e.event === "presence:join" && e.data.members.includes("pw")), JSON.stringify(ev.map(e => e.data)));
  ev.length = 0;
  await other.join("lab");
  assert.ok(await waitFor(() => ev.length >= 1, 5000), "no presence:join");
  assert.equal(ev[0].event, "presence:join");
  assert.equal(ev[0].seq, 0n);
  assert.equal(ev[0].from, "system");
  assert.equal(ev[0].fromKind, "server");
  assert.equal(ev[0].decodeError, undefined);
  assert.deepEqual(ev[0].data.members, ["po"]);
  assert.deepEqual(ev[0].data.kinds, ["IDENTITY_TOKEN"]);
  // Members after the change (other tests' clients are in lab too).
  const rooms = await watcher.listRooms({ members: true });
  const n = rooms.find(r => r.id === "lab").members;
  assert.equal(ev[0].data.count, n);
  await other.leave("lab");
  assert.ok(await waitFor(() => ev.length >= 2, 5000), "no presence:leave");
  assert.equal(ev[1].event, "presence:leave");
  assert.deepEqual(ev[1].data.members, ["po"]);
  assert.equal(ev[1].data.count, n - 1);
});
