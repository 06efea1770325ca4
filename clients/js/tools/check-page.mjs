// check-page.mjs URL [SCREENSHOT.png]: opens the dashboard page at URL (its
// fragment carrying the token) in headless Chromium (/usr/bin/chromium, or
// $DLG_CHROMIUM) and exits 0 once it is signed in and has drawn two
// metrics updates, 1 otherwise (within 20 s). `./dev demo --check` runs it.
// Certificate errors are ignored: it checks a local demo with its dev CA.
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
if (!url) {
  console.error("usage: node clients/js/tools/check-page.mjs URL [SCREENSHOT.png]");
  process.exit(2);
}
const browser = await chromium.launch({ executablePath: process.env.DLG_CHROMIUM || "/usr/bin/chromium" });
let ok = false;
try {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("console", m => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", e => errors.push(e.message));
  await page.goto(url, { timeout: 10000 });
  try {
    await page.waitForFunction(() => Number(document.getElementById("dash")?.dataset.updates || 0) >= 2 &&
      document.getElementById("conn")?.dataset.state === "connected", null, { timeout: 20000 });
    ok = errors.length === 0;
  } catch {
    // Reported below with what the page shows.
  }
  const state = await page.evaluate(() => ({
    view: document.body.dataset.view, conn: document.getElementById("conn")?.textContent,
    updates: document.getElementById("dash")?.dataset.updates, error: document.getElementById("signin-error")?.textContent,
  }));
  if (shot) await page.screenshot({ path: shot });
  if (ok) console.log(`page check passed: signed in, ${state.updates} metrics updates drawn, connection ${state.conn}`);
  else console.error(`page check FAILED: ${JSON.stringify(state)}${errors.length ? `; errors: ${errors.join(" | ")}` : ""}`);
} finally {
  await browser.close();
}
process.exit(ok ? 0 : 1);
