// page.test.mjs: the web dashboard page in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), served by a real dialogued
// with the example dashboard config: sign-in from the URL fragment and from
// the paste box, a metrics update within 2 s, a forced alert in its
// severity's colour, presence, a daemon restart survived with no alert
// missing or twice, and the refusal a non-admin sees. Every scenario saves
// a screenshot under $DLG_TEST_OUT (default $DLG_BUILD/test-output/web).
// Run by tests/integration/test_web_page.py (node --test).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { BUILD, CA, CTL, Daemon, JSDIR, ROOT, alert, dashboardConfig, loadClient, sleep, token, waitFor } from "./lib/harness.mjs";

const require = createRequire(join(JSDIR, "node_modules", "x.js"));
const { chromium } = require("playwright-core");
const CHROMIUM = process.env.DLG_CHROMIUM || "/usr/bin/chromium";
const OUT = process.env.DLG_TEST_OUT || join(BUILD, "test-output", "web");
mkdirSync(OUT, { recursive: true });

const T = { timeout: 60000 };
let D, browser, Client;
const clients = [];
const adminToken = token("ada", "admin");
const publisherToken = token("pub", "publisher");

before(async () => {
  ({ Client } = await loadClient());
  const store = mkdtempSync(join(tmpdir(), "dlg-js-web-"));
  D = await new Daemon(dashboardConfig({ store: "sqlite", storePath: join(store, "h.db") })).start();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
});

after(async () => {
  await Promise.all(clients.map(c => c.close()));
  await browser?.close();
  await D?.stop();
});

/**
 * A new browser context and page; records console errors, CSP violations,
 * page errors and every URL requested (none may carry the token).
 */
async function openPage({ width = 1280, height = 900 } = {}) {
  // The dev CA is not in Chromium's store: certificate errors are ignored
  // for this test's own loopback daemon only.
  const ctx = await browser.newContext({ viewport: { width, height }, ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  const problems = [];
  const urls = [];
  page.on("console", m => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", e => problems.push(`pageerror: ${e.message}`));
  page.on("request", r => urls.push(r.url()));
  page.on("websocket", ws => urls.push(ws.url()));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", e => {
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return { ctx, page, problems, urls };
}

async function shot(page, name) {
  await page.screenshot({ path: join(OUT, `${name}.png`), fullPage: true });
}

function assertClean(p, tok, expected = null) {
  const problems = expected ? p.problems.filter(m => !expected.test(m)) : p.problems;
  assert.deepEqual(problems, [], problems.join("\n"));
  for (const u of p.urls) assert.ok(!u.includes(tok) && !u.includes("token="), `a URL carries the token: ${u}`);
}

async function signedIn(p, tok = adminToken) {
  const resp = await p.page.goto(`${D.pageUrl}#token=${tok}`);
  assert.equal(resp.status(), 200);
  return resp;
}

/** The number of metrics:update the page has drawn. */
function updates(page) {
  return page.evaluate(() => Number(document.getElementById("dash").dataset.updates || 0));
}

test("the page loads, signs in from the fragment, and shows a metrics update within 2 s", T, async () => {
  const p = await openPage();
  try {
    const resp = await signedIn(p);
    const h = resp.headers();
    assert.match(h["content-type"] || "", /^text\/html/);
    // The page lives under the daemon's strict policy (docs/websocket.md):
    // its own scripts and styles only, nothing inline; any violation the
    // page caused would be in p.problems.
    const csp = h["content-security-policy"] || "";
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /style-src 'self'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    // The token left the address bar and the history entry; it is in sessionStorage.
    await p.page.waitForSelector("#dash:not([hidden])", { timeout: 10000 });
    assert.equal(new URL(p.page.url()).hash, "");
    assert.equal(await p.page.evaluate(() => sessionStorage.getItem("dialogue.token")), adminToken);
    assert.equal(await p.page.textContent("#conn"), "live");
    // The last five minutes (history) are drawn, then live updates.
    await p.page.waitForFunction(() => Number(document.getElementById("dash").dataset.updates || 0) > 0, null, { timeout: 5000 });
    const n0 = await updates(p.page);
    const seq0 = await p.page.evaluate(() => document.getElementById("dash").dataset.lastSeq);
    const t0 = Date.now();
    await p.page.waitForFunction(s => document.getElementById("dash").dataset.lastSeq !== s, seq0, { timeout: 2000 });
    assert.ok(Date.now() - t0 <= 2000);
    assert.ok(await updates(p.page) > n0);
    const cpu = await p.page.textContent("#v-cpu");
    assert.match(cpu, /^\d+(\.\d)? %$/, `cpu card reads ${cpu}`);
    assert.match(await p.page.textContent("#who"), /ada/);
    await p.page.waitForSelector("#chart-cpu canvas");
    await sleep(300);
    await shot(p.page, "1-signed-in-live");
    // Reloaded, the page signs in again from sessionStorage.
    await p.page.reload();
    await p.page.waitForSelector("#dash:not([hidden])", { timeout: 10000 });
    assertClean(p, adminToken);
  } finally {
    await p.ctx.close();
  }
});

test("sign-in with the paste box, at 360 px: no sideways scrolling", T, async () => {
  const p = await openPage({ width: 360, height: 780 });
  try {
    await p.page.goto(D.pageUrl);
    await p.page.waitForSelector("#signin:not([hidden])");
    await shot(p.page, "2a-signin-360px");
    await p.page.fill("#token", adminToken);
    await p.page.click("#signin-form button[type=submit]");
    await p.page.waitForSelector("#dash:not([hidden])", { timeout: 10000 });
    await p.page.waitForFunction(() => Number(document.getElementById("dash").dataset.updates || 0) > 1, null, { timeout: 5000 });
    await sleep(300);
    const w = await p.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(w <= 360, `the page is ${w} px wide at 360 px`);
    await shot(p.page, "2b-dashboard-360px");
    // A bad token is refused with the server's reason, back at the paste box.
    await p.page.click("#signout");
    await p.page.waitForSelector("#signin:not([hidden])");
    assert.equal(await p.page.evaluate(() => sessionStorage.getItem("dialogue.token")), null);
    await p.page.fill("#token", "not-a-token");
    await p.page.click("#signin-form button[type=submit]");
    await p.page.waitForSelector("#signin-error:not([hidden])", { timeout: 10000 });
    assert.match(await p.page.textContent("#signin-error"), /UNAUTHENTICATED/);
    await shot(p.page, "2c-bad-token");
    assertClean(p, adminToken);
  } finally {
    await p.ctx.close();
  }
});

test("a forced alert shows in the list in its severity's colour (wall screen)", T, async () => {
  const p = await openPage({ width: 1920, height: 1080 });
  try {
    await signedIn(p);
    await p.page.waitForSelector("#dash:not([hidden])", { timeout: 10000 });
    const a = alert("forced-1", "critical", "CPU on fire (forced by the test)");
    execFileSync(CTL, ["--server", `127.0.0.1:${D.port}`, "--ca", CA, "--token", publisherToken,
      "trigger", "dashboard", "alert:triggered", JSON.stringify(a)], { stdio: "ignore", timeout: 10000 });
    const sel = '#alerts li[data-alert-id="forced-1"]';
    await p.page.waitForSelector(sel, { timeout: 5000 });
    // One look at the element as it is now (the list may be redrawn between two).
    const got = await p.page.$eval(sel, e => [e.className, e.textContent, getComputedStyle(e).borderLeftColor]);
    assert.equal(got[0], "sev-critical");
    assert.match(got[1], /CPU on fire/);
    assert.equal(got[2], "rgb(248, 81, 73)");
    const low = alert("forced-2", "low", "just so you know");
    execFileSync(CTL, ["--server", `127.0.0.1:${D.port}`, "--ca", CA, "--token", publisherToken,
      "trigger", "dashboard", "alert:triggered", JSON.stringify(low)], { stdio: "ignore", timeout: 10000 });
    const sel2 = '#alerts li[data-alert-id="forced-2"]';
    await p.page.waitForSelector(sel2, { timeout: 5000 });
    assert.equal(await p.page.$eval(sel2, e => getComputedStyle(e).borderLeftColor), "rgb(88, 166, 255)");
    await sleep(300);
    await shot(p.page, "3-alert-wall-screen");
    assertClean(p, adminToken);
  } finally {
    await p.ctx.close();
  }
});

test("presence: another watcher appears in the list and goes when it leaves", T, async () => {
  const p = await openPage();
  try {
    await signedIn(p);
    await p.page.waitForSelector('#presence li[data-user="ada"]', { timeout: 10000 });
    const bob = new Client({ url: D.url, caFile: CA, token: token("bob", "admin") });
    clients.push(bob);
    await bob.connect();
    // Within a presence window (500 ms) and a margin: the page is told, it does not poll.
    await p.page.waitForSelector('#presence li[data-user="bob"]', { timeout: 3000 });
    assert.equal(await p.page.getAttribute('#presence li[data-user="ada"]', "class"), "me");
    await sleep(200);
    await shot(p.page, "4-presence");
    await bob.close();
    await p.page.waitForSelector('#presence li[data-user="bob"]', { state: "detached", timeout: 3000 });
    assertClean(p, adminToken);
  } finally {
    await p.ctx.close();
  }
});

test("daemon restart: the page reconnects and recovers, no alert missing or twice", T, async () => {
  const p = await openPage();
  const pub = (ids) => {
    for (const id of ids)
      execFileSync(CTL, ["--server", `127.0.0.1:${D.port}`, "--ca", CA, "--token", publisherToken,
        "trigger", "dashboard", "alert:triggered", JSON.stringify(alert(id, "medium", `restart test ${id}`))],
      { stdio: "ignore", timeout: 10000 });
  };
  const ids = () => p.page.$$eval("#alerts li", ls => ls.map(l => l.dataset.alertId));
  try {
    await signedIn(p);
    await p.page.waitForSelector("#dash:not([hidden])", { timeout: 10000 });
    pub(["r-before-1", "r-before-2"]);
    await p.page.waitForSelector('#alerts li[data-alert-id="r-before-2"]', { timeout: 5000 });
    await D.stop();
    await p.page.waitForFunction(() => document.getElementById("conn").dataset.state !== "connected", null, { timeout: 5000 });
    await shot(p.page, "5a-daemon-down");
    // The page's retries back off (0.1, 0.2, 0.4 ... s, minus up to 20 %):
    // after its 6th refused attempt the next one is at least 5 s away, time
    // enough to start the daemon and publish what the page must recover.
    const refused = () => p.problems.filter(m => /ERR_CONNECTION_REFUSED/.test(m)).length;
    assert.ok(await waitFor(() => refused() >= 6, 15000), `${refused()} refused attempts`);
    await D.start();
    const during = new Client({ url: D.url, caFile: CA, token: publisherToken, reconnect: false });
    await during.connect();
    await during.join("dashboard");
    for (const id of ["r-during-1", "r-during-2"])
      await during.trigger("dashboard", "alert:triggered", alert(id, "medium", `restart test ${id}`));
    await during.close();
    assert.notEqual(await p.page.getAttribute("#conn", "data-state"), "connected",
      "the page came back before the alerts it was to miss");
    await p.page.waitForFunction(() => document.getElementById("conn").dataset.state === "connected", null, { timeout: 15000 });
    pub(["r-after-1"]);
    await p.page.waitForSelector('#alerts li[data-alert-id="r-after-1"]', { timeout: 5000 });
    await sleep(500);
    const got = (await ids()).filter(x => x.startsWith("r-"));
    assert.deepEqual([...got].sort(), ["r-after-1", "r-before-1", "r-before-2", "r-during-1", "r-during-2"]);
    // The page keys its lists by (epoch, seq): count what the client delivered.
    const dupes = await p.page.evaluate(() => Number(document.getElementById("dash").dataset.liveDupes || 0));
    assert.equal(dupes, 0, "the client delivered an event twice");
    // Metrics go on after the restart.
    const n = await updates(p.page);
    await p.page.waitForFunction(m => Number(document.getElementById("dash").dataset.updates) > m, n, { timeout: 3000 });
    // The presence subscription came back with the room: a newcomer shows.
    const carol = new Client({ url: D.url, caFile: CA, token: token("carol", "admin") });
    clients.push(carol);
    await carol.connect();
    await p.page.waitForSelector('#presence li[data-user="carol"]', { timeout: 3000 });
    await carol.close();
    await shot(p.page, "5b-after-restart");
    // The page's attempts while the daemon was down were refused.
    assertClean(p, adminToken, /WebSocket connection to .* failed: .*ERR_CONNECTION_REFUSED/);
  } finally {
    await p.ctx.close();
  }
});

test("a non-admin sees a clear 'not allowed' page and none of the data", T, async () => {
  for (const [name, role] of [["vic", "viewer"], ["pete", "publisher"]]) {
    const p = await openPage({ width: 800, height: 600 });
    const tok = token(name, role);
    try {
      await p.page.goto(`${D.pageUrl}#token=${tok}`);
      await p.page.waitForSelector("#denied:not([hidden])", { timeout: 10000 });
      assert.equal(await p.page.textContent("#denied h2"), "Not allowed");
      assert.match(await p.page.textContent("#denied-text"), new RegExp(`${name}.*${role}.*administrators`));
      assert.equal(await p.page.isHidden("#dash"), true);
      await sleep(1500);
      // Nothing of the room reached the page.
      assert.equal(await p.page.$$eval("#alerts li", l => l.length), 0);
      assert.equal(await updates(p.page), 0);
      assert.equal(await p.page.$("#chart-cpu canvas"), null);
      await shot(p.page, `6-not-allowed-${role}`);
      assertClean(p, tok);
    } finally {
      await p.ctx.close();
    }
  }
});

test("the browser subscriber of clients/js/README.md works as written", T, async () => {
  const readme = readFileSync(join(ROOT, "clients", "js", "README.md"), "utf8");
  const m = readme.match(/## A browser subscriber\s+```js\n([\s\S]*?)```/);
  assert.ok(m, "README.md has no browser subscriber block");
  const lines = m[1].trimEnd().split("\n");
  assert.ok(lines.length <= 15, `the example has ${lines.length} lines`);
  const code = m[1].replace("wss://localhost:3000/v1/ws", D.url);
  const esbuild = require("esbuild");
  const out = await esbuild.build({
    stdin: { contents: code, resolveDir: JSDIR, loader: "js" }, bundle: true, format: "esm",
    target: "es2022", write: false, logLevel: "silent",
    alias: { "@dialogue/client": join(JSDIR, "dist", "src", "index.js") },
  });
  // The example is the reader's own script: loaded into a page of the
  // daemon's origin, past the dashboard's CSP (which allows only its files).
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, bypassCSP: true });
  const page = await ctx.newPage();
  const logs = [];
  page.on("console", msg => logs.push(msg.text()));
  page.on("pageerror", e => logs.push(`pageerror: ${e.message}`));
  try {
    await page.goto(D.pageUrl);
    await page.evaluate(t => sessionStorage.setItem("dialogue.token", t), token("reader", "admin"));
    await page.addScriptTag({ content: out.outputFiles[0].text, type: "module" });
    const ok = await waitFor(() => logs.includes("watching as reader") &&
      logs.filter(l => /^seq \d+: cpu [\d.]+ %, memory [\d.]+ %$/.test(l)).length >= 2, 8000);
    assert.ok(ok, logs.join("\n"));
    assert.ok(logs.includes("dialogue: connected "), logs.join("\n"));
    assert.ok(!logs.some(l => l.startsWith("pageerror")), logs.join("\n"));
    // What it printed (the page shows nothing of it: it is console output).
    writeFileSync(join(OUT, "7-readme-subscriber.txt"), logs.join("\n") + "\n");
  } finally {
    await ctx.close();
  }
});
