// bridge.mjs: DEVELOPMENT ONLY, until dialogued serves WebSocket itself: an
// HTTPS server on 127.0.0.1 that serves the page's files and turns each
// WebSocket (/v1/ws, dialogue.v1) into a dialogue/1 TLS connection to a
// real dialogued, frame for frame (binary message <-> 5-byte prefix).
import { createServer } from "node:https";
import { connect } from "node:tls";
import { readFileSync, existsSync } from "node:fs";
import { join, extname, normalize } from "node:path";
import { createRequire } from "node:module";

export async function startBridge({ daemonPort, certs, webRoot, jsdir, port = 0 }) {
  const require = createRequire(join(jsdir, "node_modules", "x.js"));
  const { WebSocketServer } = require("ws");
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml" };
  const server = createServer({ cert: readFileSync(join(certs, "server.crt")), key: readFileSync(join(certs, "server.key")) }, (req, res) => {
    const p = new URL(req.url, "https://x").pathname;
    const f = normalize(join(webRoot, p === "/" ? "index.html" : p));
    if (!f.startsWith(webRoot) || !existsSync(f) || !types[extname(f)]) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": types[extname(f)], "cache-control": "no-cache",
      "content-security-policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'" });
    res.end(readFileSync(f));
  });
  const wss = new WebSocketServer({ noServer: true, handleProtocols: ps => (ps.has("dialogue.v1") ? "dialogue.v1" : false) });
  server.on("upgrade", (req, sock, head) => {
    if (new URL(req.url, "https://x").pathname !== "/v1/ws") { sock.destroy(); return; }
    wss.handleUpgrade(req, sock, head, ws => {
      const t = connect({ host: "127.0.0.1", port: daemonPort, servername: "localhost", ca: readFileSync(join(certs, "ca.crt")), ALPNProtocols: ["dialogue/1"] });
      let buf = Buffer.alloc(0);
      const early = [];
      let up = false;
      t.on("secureConnect", () => { up = true; for (const m of early) t.write(m); });
      t.on("data", d => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 5) {
          const n = buf.readUInt32BE(1);
          if (buf.length < 5 + n) break;
          ws.send(buf.subarray(5, 5 + n), { binary: true });
          buf = buf.subarray(5 + n);
        }
      });
      const end = () => { try { ws.close(1000); } catch { /* */ } };
      t.on("close", end);
      t.on("error", end);
      ws.on("message", (m, isBinary) => {
        if (!isBinary) { ws.close(1003, "text frames are refused"); t.destroy(); return; }
        const h = Buffer.alloc(5); h.writeUInt32BE(m.length, 1);
        const fr = Buffer.concat([h, m]);
        if (up) t.write(fr); else early.push(fr);
      });
      ws.on("close", () => t.destroy());
    });
  });
  await new Promise(r => server.listen(port, "127.0.0.1", r));
  return { port: server.address().port, close: () => { wss.clients.forEach(c => c.terminate()); server.close(); } };
}
