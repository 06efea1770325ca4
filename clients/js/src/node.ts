// node.ts: the package's entry for Node 20+: the same Client, with sockets
// from the `ws` package and TLS options (a private CA, client certificates)
// passed through to it.
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import type { ClientOptions as BaseOptions, WebSocketLike } from "./client.js";
import { Client as BaseClient } from "./client.js";

export * from "./index.js";

export interface NodeClientOptions extends BaseOptions {
  /** PEM file of the CA that signed the server's certificate (default: Node's store). */
  caFile?: string;
  /** Options handed to `new WebSocket(url, protocol, options)` of the ws package. */
  wsOptions?: WebSocket.ClientOptions;
}

/** The Client with Node's sockets. Options as in the browser, plus caFile and wsOptions. */
export class Client extends BaseClient {
  constructor(opts: NodeClientOptions) {
    const wsOpts: WebSocket.ClientOptions = { ...(opts.wsOptions ?? {}) };
    if (opts.caFile) wsOpts.ca = readFileSync(opts.caFile);
    // No redirect may carry the Hello elsewhere; frames are capped by the client anyway.
    wsOpts.followRedirects = false;
    super({
      ...opts,
      socket: opts.socket ?? ((url, protocol) => new WebSocket(url, protocol, wsOpts) as unknown as WebSocketLike),
    });
  }
}
