// harness.mjs: what the JavaScript tests share: a real dialogued on
// 127.0.0.1 (dev certificates, an HS256 secret, a config in a temp folder,
// started as tests/lib/dlgtest.py starts it), tokens minted by
// `dialoguectl token`, and the client package built into $DLG_BUILD/js.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const BUILD = process.env.DLG_BUILD || join(ROOT, "build");
export const DAEMON = process.env.DLG_DAEMON || join(BUILD, "bin", "dialogued");
export const CTL = join(BUILD, "bin", "dialoguectl");
// The JS is the same in every variant; the release build's serves when a
// variant (asan) was built without it.
export const JSDIR = existsSync(join(BUILD, "js", "dist", "src", "node.js")) ? join(BUILD, "js") : join(ROOT, "build", "js");
export const WEB_ROOT = join(dirname(JSDIR), "web");
export const SHARE = join(BUILD, "share", "dialogue");

const tmpDirs = [];
const procs = new Set();
function tmp(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}
process.on("exit", () => {
  for (const p of procs) try { p.kill("SIGKILL"); } catch { /* gone */ }
  if (!process.env.DLGT_KEEP) for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

export const CERTS = tmp("dlg-js-certs-");
execFileSync(join(ROOT, "tools", "devcerts.sh"), [CERTS], { stdio: "ignore" });
export const CA = join(CERTS, "ca.crt");
export const SECRET_FILE = join(CERTS, "token.secret");
writeFileSync(SECRET_FILE, "js-test-secret-0123456789abcdef0123456789\n", { mode: 0o600 });

/** The client package (node entry) as built. */
export async function loadClient() {
  return import(join(JSDIR, "dist", "src", "node.js"));
}

/** An HS256 token for `sub` with `roles`, minted by dialoguectl. */
export function token(sub, ...roles) {
  const args = ["token", "--secret-file", SECRET_FILE, "--sub", sub, "--ttl", "1h"];
  for (const r of roles) args.push("--role", r);
  return execFileSync(CTL, args, { encoding: "utf8" }).trim();
}

/**
 * The dashboard config of examples/dashboard/dialogue.yaml (admins
 * auto-joined to "dashboard", publishers may publish), plus room "lab"
 * that every signed-in client may join and publish to; `extra` is YAML
 * added at the top level.
 */
export function dashboardConfig({ store = "memory", storePath = "", extra = "", alertThreshold } = {}) {
  let y = readFileSync(join(ROOT, "examples", "dashboard", "dialogue.yaml"), "utf8");
  y = y.replaceAll("../../.state/certs/", CERTS + "/")
    .replaceAll("../../build/share/dialogue/", SHARE + "/")
    .replaceAll("../../.state/token.secret", SECRET_FILE)
    .replace("address: 127.0.0.1:3000", "address: 127.0.0.1:0")
    .replace("log_level: info", "log_level: debug");
  if (alertThreshold !== undefined)
    y = y.replace('threshold: 90', `threshold: ${alertThreshold}`);
  y = y.replace("auto_join:", `  - id: lab
    events: [metrics:update, alert:triggered]
    default_subscriptions: ["*"]
    join: ["*"]
    trigger: ["*"]
    history:
      - {event: alert:triggered, limit: 100}
auto_join:`);
  y += `http:\n  web_root: ${WEB_ROOT}\n`;
  y += `store: ${store}\n`;
  if (storePath) y += `store_path: ${storePath}\n`;
  return y + extra;
}

/** A dialogued on 127.0.0.1; `port` 0 = any free port. */
export class Daemon {
  constructor(configText, { port = 0, args = [] } = {}) {
    this.dir = tmp("dlg-js-d-");
    this.configPath = join(this.dir, "dialogue.yaml");
    writeFileSync(this.configPath, configText);
    this.args = args;
    this.wantPort = port;
  }

  /** Starts it; resolves once it listens (port file written). */
  async start() {
    const portFile = join(this.dir, "port");
    rmSync(portFile, { force: true });
    this.logPath = join(this.dir, "dialogued.log");
    const fd = openSync(this.logPath, "a");
    this.proc = spawn(DAEMON, ["--config", this.configPath, "--listen", `127.0.0.1:${this.wantPort}`,
      "--port-file", portFile, "--log-level", "debug", ...this.args],
      { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    procs.add(this.proc);
    this.exited = new Promise(res => this.proc.on("exit", (code, sig) => { procs.delete(this.proc); res({ code, sig }); }));
    const deadline = Date.now() + 10000;
    while (Date.now() < deadline) {
      if (existsSync(portFile)) {
        const t = readFileSync(portFile, "utf8");
        if (t.endsWith("\n")) {
          this.port = Number(t);
          this.wantPort = this.port;
          return this;
        }
      }
      if (this.proc.exitCode !== null) throw new Error(`dialogued exited ${this.proc.exitCode}: ${this.log()}`);
      await sleep(20);
    }
    throw new Error(`dialogued did not start: ${this.log()}`);
  }

  /** Where a client connects: the daemon's WebSocket endpoint. */
  get url() {
    return `wss://localhost:${this.port}/v1/ws`;
  }

  /** The page, served by the daemon from http.web_root. */
  get pageUrl() {
    return `https://localhost:${this.port}/`;
  }

  log() {
    try { return readFileSync(this.logPath, "utf8"); } catch { return ""; }
  }

  /**
   * SIGTERM (a clean stop: an SQLite store keeps its epochs), waits up to
   * 10 s. Throws when the daemon did not exit 0 (a crash, a sanitizer's
   * report, a leak under ASan), with the end of its log.
   */
  async stop(sig = "SIGTERM") {
    if (!this.proc) return;
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill(sig);
      const t = setTimeout(() => this.proc.kill("SIGKILL"), 10000);
      await this.exited;
      clearTimeout(t);
    }
    const { code, sig: s } = await this.exited;
    if (code !== 0)
      throw new Error(`dialogued ended with ${s ? `signal ${s}` : `status ${code}`}:\n${this.log().slice(-4000)}`);
  }
}

export function sleep(ms) {
  return new Promise(r => setTimeout(r, ms));
}

/** Polls cond() until it is truthy or `within` ms pass; returns its last value. */
export async function waitFor(cond, within = 5000, step = 20) {
  const deadline = Date.now() + within;
  let v = await cond();
  while (!v && Date.now() < deadline) {
    await sleep(step);
    v = await cond();
  }
  return v;
}

/** Dashboard payloads for triggers (proto3 JSON). */
export function alert(id, severity = "high", message = `alert ${id}`) {
  return { alertId: String(id), severity, message, timestamp: String(Date.now()) };
}
