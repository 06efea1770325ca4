// client.ts: the dialogue client over WebSocket (docs/websocket.md): one
// socket per attempt, requests matched to replies by request id, events
// routed to handlers and decoded with the server's schema, reconnect with
// backoff, and after each Welcome the restore of joined rooms with recovery
// by (epoch, seq). It behaves as libdialogue-client does
// (docs/client-library.md); the comments name the C function a rule comes
// from where that helps to compare them.
import { create, fromBinary, toBinary, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientFrameSchema, ServerFrameSchema, IdentityKind,
  type ClientFrame, type ServerFrame, type Event as PbEvent, type Joined as PbJoined,
  type HistoryBatch as PbHistoryBatch, type Welcome as PbWelcome, type Gap as PbGap,
  type RoomInfo as PbRoomInfo,
} from "./gen/dialogue/v1/protocol_pb.js";
import { backoffMs } from "./backoff.js";
import { DialogueError, statusName } from "./errors.js";
import { EventSchema } from "./schema.js";

/** The WebSocket subprotocol of dialogue over WebSocket. */
export const SUBPROTOCOL = "dialogue.v1";

/**
 * What the client needs of a WebSocket: the browser's `WebSocket` and the
 * `ws` package's both fit.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly protocol: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** Opens a socket to `url` asking for `protocol` (one per connection attempt). */
export type SocketFactory = (url: string, protocol: string) => WebSocketLike;

export type LogLevel = "debug" | "info" | "warn";

export interface ClientOptions {
  /** The server's WebSocket endpoint, e.g. "wss://localhost:3000/v1/ws". */
  url: string;
  /** A JWT for Hello (sent inside Hello, never in the URL); none = anonymous. */
  token?: string;
  /** Shown in the server's logs. Default "dialogue-js". */
  clientName?: string;
  /** Reconnect after a loss or a failed attempt. Default true. */
  reconnect?: boolean;
  /** Reconnect delay: min doubled per failed attempt, capped at max, minus up to jitter of itself. Defaults 100, 30000, 0.2. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  backoffJitter?: number;
  /** Socket open + Hello + Welcome. Default 10000. */
  connectTimeoutMs?: number;
  /** Per request, from the call. Default 10000. */
  requestTimeoutMs?: number;
  /** Largest frame accepted from the server, bytes. Default 1 MiB. */
  maxFrame?: number;
  /** Cap on unanswered requests. Default 4096. */
  maxPending?: number;
  /**
   * Ask for the server's schema after every Welcome and decode event
   * payloads into `event.data` (events are held until it is in, so every
   * one is decoded). Default true.
   */
  decode?: boolean;
  /** How sockets are made. Default: the global WebSocket (browsers). */
  socket?: SocketFactory;
  /** Library diagnostics. Default: none. */
  log?: (level: LogLevel, message: string) => void;
}

export type State = "idle" | "connecting" | "connected" | "disconnected" | "closed";

/** What kind of name `from` (or a user id) is: docs/protocol.md. */
export type IdentityKindName = "unspecified" | "server" | "token" | "certificate" | "anonymous";

export interface DialogueEvent {
  room: string;
  event: string;
  /** The payload decoded with the server's schema (proto3 JSON), when it decoded. */
  data?: JsonValue;
  /** Why `data` is missing: no schema for the event, or the bytes did not decode. */
  decodeError?: string;
  /** The payload as sent. */
  payload: Uint8Array;
  from: string;
  fromKind: IdentityKindName;
  /** Server time of acceptance, ms since the Unix epoch. */
  ts: number;
  seq: bigint;
  epoch: bigint;
}

export interface Joined {
  room: string;
  /** "*" = every event. */
  subscriptions: string[];
  epoch: bigint;
  seq: bigint;
  members: number;
  historyFollows: boolean;
  name: string;
}

export interface Welcome {
  clientId: string;
  userId: string;
  serverVersion: string;
  heartbeatMs: number;
  roles: string[];
  maxFrame: number;
  autoJoined: Joined[];
  identityKind: IdentityKindName;
}

export interface Ack {
  seq: bigint;
  recipients: number;
}

export interface HistoryReply {
  room: string;
  /** Oldest first. */
  events: DialogueEvent[];
  /** False: part of the range is no longer kept. */
  complete: boolean;
  epoch: bigint;
}

export interface RoomInfo {
  id: string;
  name: string;
  description: string;
  events: string[];
  members: number;
  maxSize: number;
  dynamic: boolean;
  memberIds: string[];
  memberKinds: IdentityKindName[];
  defaultSubscriptions: string[];
}

/** Events of `room` may be missing: see docs/client-library.md, the gap callback. */
export interface Gap {
  room: string;
  reason: string;
  /** The room's history was lost: rebuild the view from what follows. */
  epochChanged: boolean;
  oldEpoch: bigint;
  sinceSeq: bigint;
  epoch: bigint;
}

export interface HistoryOptions {
  /** One event type; default every kept type. */
  event?: string;
  /** Newest-first paging by index: skip `start`, take `limit` (0 = server's cap). */
  start?: number;
  limit?: number;
  /** Everything after this seq instead of paging by index. */
  sinceSeq?: bigint | number;
}

export type EventHandler = (ev: DialogueEvent) => void;

type ReqKind = "hello" | "join" | "leave" | "subscribe" | "unsubscribe" | "trigger" | "listRooms"
  | "history" | "ping" | "getSchema" | "createRoom" | "deleteRoom";

const EXPECT: Record<ReqKind, ServerFrame["msg"]["case"]> = {
  hello: "welcome", join: "joined", leave: "left", subscribe: "joined", unsubscribe: "joined",
  trigger: "ack", listRooms: "rooms", history: "historyBatch", ping: "pong",
  getSchema: "schema", createRoom: "ack", deleteRoom: "ack",
};

interface Req {
  id: bigint;
  kind: ReqKind;
  room: string;
  bytes: Uint8Array;
  sent: boolean;
  /** "restore": traffic of the library itself (rejoins, resubscriptions, the schema). */
  owner: "user" | "restore";
  t0: number;
  timer?: ReturnType<typeof setTimeout>;
  resolve: (f: ServerFrame) => void;
  reject: (e: DialogueError) => void;
}

/** Where the client stands in a joined room: recover.c. */
interface RoomRec {
  room: string;
  subs: string[];
  known: boolean;
  epoch: bigint;
  seq: bigint;
  floor: bigint;
  pendRid: bigint;
  pendEpoch: bigint;
  pendSeq: bigint;
  pendRecover: boolean;
  inRestore: boolean;
  autoJoined: boolean;
  rejoinRecover: boolean;
}

interface Conn {
  ws: WebSocketLike;
  phase: "open" | "hello" | "ready" | "dead";
  helloId: bigint;
  lastRx: number;
  serverError: string;
  socketError: string;
  connectTimer?: ReturnType<typeof setTimeout>;
  watchdog?: ReturnType<typeof setInterval>;
  /** Frames that came before the schema, handled once it is in. */
  holding: boolean;
  held: ServerFrame[];
  schemaRid: bigint;
}

interface Handler {
  room: string | null;
  event: string | null;
  cb: EventHandler;
}

const KIND_NAMES: Record<number, IdentityKindName> = {
  [IdentityKind.IDENTITY_KIND_UNSPECIFIED]: "unspecified",
  [IdentityKind.IDENTITY_SERVER]: "server",
  [IdentityKind.IDENTITY_TOKEN]: "token",
  [IdentityKind.IDENTITY_CERTIFICATE]: "certificate",
  [IdentityKind.IDENTITY_ANONYMOUS]: "anonymous",
};

function kindName(k: number): IdentityKindName {
  return KIND_NAMES[k] ?? "unspecified";
}

function joinedView(j: PbJoined): Joined {
  return {
    room: j.room, subscriptions: [...j.subscriptions], epoch: j.epoch, seq: j.seq,
    members: j.members, historyFollows: j.historyFollows, name: j.name,
  };
}

function roomView(r: PbRoomInfo): RoomInfo {
  return {
    id: r.id, name: r.name, description: r.description, events: [...r.events],
    members: r.members, maxSize: r.maxSize, dynamic: r.dynamic, memberIds: [...r.memberIds],
    memberKinds: r.memberKinds.map(kindName), defaultSubscriptions: [...r.defaultSubscriptions],
  };
}

/** A ClientFrame's message, as plain values. */
type MsgInit = NonNullable<MessageInitShape<typeof ClientFrameSchema>["msg"]>;

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function now(): number {
  return Date.now();
}

/** Runs a user callback; what it throws is reported later, not into the library. */
function callUser<A extends unknown[]>(cb: (...a: A) => void, ...args: A): void {
  try {
    cb(...args);
  } catch (e) {
    queueMicrotask(() => { throw e; });
  }
}

function defaultSocket(url: string, protocol: string): WebSocketLike {
  const WS = (globalThis as { WebSocket?: new (u: string, p: string) => WebSocketLike }).WebSocket;
  if (!WS) {
    throw new DialogueError(0, "INVALID",
      "no WebSocket in this environment: give options.socket (in Node, import the package's node entry)");
  }
  return new WS(url, protocol);
}

export class Client {
  private readonly o: Required<Omit<ClientOptions, "token" | "log" | "socket">> & {
    token: string;
  };
  private readonly socket: SocketFactory;
  private readonly logFn?: (level: LogLevel, message: string) => void;
  private st: State = "idle";
  private conn: Conn | null = null;
  private nextId = 1n;
  private readonly reqs = new Map<bigint, Req>();
  private readonly rooms = new Map<string, RoomRec>();
  private pendAny = false;
  private handlers: Handler[] = [];
  private dispatching = 0;
  private readonly stateCbs: ((s: State, reason: string) => void)[] = [];
  private readonly gapCbs: ((g: Gap) => void)[] = [];
  private readonly leftCbs: ((room: string, reason: string) => void)[] = [];
  private attempt = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private closing = false;
  private serverMaxFrame = 0;
  private heartbeatMs = 0;
  private welcomeV: Welcome | null = null;
  private schemaV: EventSchema = EventSchema.empty();
  private schemaIn = false;
  /** Those waiting in schema() for the GetSchema sent after the Welcome. */
  private schemaWaiters: (() => void)[] = [];
  private reason = "";
  private connectWaiters: { resolve: (w: Welcome) => void; reject: (e: Error) => void }[] = [];
  private closeWaiters: (() => void)[] = [];

  /** Options are copied; nothing happens until connect(). */
  constructor(opts: ClientOptions) {
    if (!opts || typeof opts.url !== "string" || opts.url === "")
      throw new DialogueError(0, "INVALID", "options.url: the server's WebSocket URL is required");
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw new DialogueError(0, "INVALID", `options.url: "${opts.url}" is not a URL`);
    }
    if (u.protocol !== "wss:" && u.protocol !== "ws:")
      throw new DialogueError(0, "INVALID", `options.url: "${opts.url}" is not a ws: or wss: URL`);
    if (u.search.includes("token") || u.hash)
      throw new DialogueError(0, "INVALID", "options.url: the token goes in options.token, never in the URL");
    this.o = {
      url: opts.url,
      token: opts.token ?? "",
      clientName: opts.clientName ?? "dialogue-js",
      reconnect: opts.reconnect ?? true,
      backoffMinMs: opts.backoffMinMs ?? 100,
      backoffMaxMs: opts.backoffMaxMs ?? 30000,
      backoffJitter: opts.backoffJitter ?? 0.2,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10000,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10000,
      maxFrame: opts.maxFrame ?? 1 << 20,
      maxPending: opts.maxPending ?? 4096,
      decode: opts.decode ?? true,
    };
    this.socket = opts.socket ?? defaultSocket;
    this.logFn = opts.log;
  }

  // ---- state -------------------------------------------------------------

  /** idle -> connecting -> connected -> disconnected -> connecting ... -> closed */
  get state(): State {
    return this.st;
  }

  /** Why the last connection or attempt ended ("" before any). */
  get lastReason(): string {
    return this.reason;
  }

  /** The Welcome of the current connection, or null when not connected. */
  get welcome(): Welcome | null {
    return this.st === "connected" ? this.welcomeV : null;
  }

  /** The rooms the client is in (restored after every reconnect). */
  get joinedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  /** Whether the current connection's Welcome joined the client to `room` (auto_join). */
  autoJoined(room: string): boolean {
    return this.st === "connected" && (this.rooms.get(room)?.autoJoined ?? false);
  }

  /** Calls cb on every state change, with the reason of a disconnect. Returns the remover. */
  onState(cb: (state: State, reason: string) => void): () => void {
    this.stateCbs.push(cb);
    return () => { const i = this.stateCbs.indexOf(cb); if (i >= 0) this.stateCbs.splice(i, 1); };
  }

  /** Events of a room may be missing (recovery fell short, or the server says so). */
  onGap(cb: (gap: Gap) => void): () => void {
    this.gapCbs.push(cb);
    return () => { const i = this.gapCbs.indexOf(cb); if (i >= 0) this.gapCbs.splice(i, 1); };
  }

  /** The server removed the client from a room, or its rejoin was refused. */
  onLeft(cb: (room: string, reason: string) => void): () => void {
    this.leftCbs.push(cb);
    return () => { const i = this.leftCbs.indexOf(cb); if (i >= 0) this.leftCbs.splice(i, 1); };
  }

  /**
   * Routes delivered events of `room` and `event` (null: any) to cb, after
   * earlier registrations. Register before connect() so the sync batch of
   * an auto-joined room is not missed. Returns the remover (safe inside a
   * handler).
   */
  on(room: string | null, event: string | null, cb: EventHandler): () => void {
    const h: Handler = { room, event, cb };
    this.handlers.push(h);
    return () => {
      // During a dispatch the list is being walked: replace it, never splice it.
      this.handlers = this.handlers.filter(x => x !== h);
    };
  }

  /**
   * Connects (and keeps reconnecting, unless options.reconnect is false).
   * Resolves with the next Welcome; rejects when no attempt will follow
   * (reconnect off, credentials refused, or close()).
   */
  connect(): Promise<Welcome> {
    if (this.st === "closed")
      return Promise.reject(new DialogueError(0, "CLOSED", "the client is closed"));
    if (this.st === "connected" && this.welcomeV)
      return Promise.resolve(this.welcomeV);
    const p = new Promise<Welcome>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this.st === "idle" || this.st === "disconnected") {
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      // Requests made from now on wait for this attempt; the state callback
      // comes later (never from inside the call that caused it).
      this.st = "connecting";
      queueMicrotask(() => { if (!this.closing && !this.conn) this.startAttempt(); });
    }
    return p;
  }

  /**
   * Stops reconnecting, rejects every unanswered request with CLOSED,
   * reports "closed" and closes the socket. Resolves once it is closed.
   */
  close(): Promise<void> {
    if (this.st === "closed") return Promise.resolve();
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const conn = this.conn;
    const done = new Promise<void>(resolve => {
      if (!conn) { resolve(); return; }
      this.closeWaiters.push(resolve);
      // A peer that never answers the close handshake must not hold us.
      setTimeout(() => this.flushCloseWaiters(), 2000);
    });
    if (conn) this.teardown(conn, 1000, "client closed");
    this.conn = null;
    const sw = this.schemaWaiters;
    this.schemaWaiters = [];
    for (const w of sw) w();
    this.failRequests("the client was closed");
    this.rejectConnectWaiters(new DialogueError(0, "CLOSED", "the client was closed"));
    queueMicrotask(() => this.setState("closed", "closed"));
    return done;
  }

  // ---- requests ------------------------------------------------------------

  /** Joins a room; its sync batch (if any) reaches the handlers before later events. */
  async join(room: string): Promise<Joined> {
    const f = await this.request("join", { case: "join", value: { room } }, room);
    return joinedView(f.msg.value as PbJoined);
  }

  async leave(room: string): Promise<void> {
    await this.request("leave", { case: "leave", value: { room } }, room);
  }

  /** Subscribes to events of a joined room; "*" (or []) with all = every event. */
  async subscribe(room: string, events: string[] | "*"): Promise<Joined> {
    const all = events === "*";
    const f = await this.request("subscribe", {
      case: "subscribe", value: { room, events: all ? [] : events, all },
    }, room);
    return joinedView(f.msg.value as PbJoined);
  }

  async unsubscribe(room: string, events: string[] | "*"): Promise<Joined> {
    const all = events === "*";
    const f = await this.request("unsubscribe", {
      case: "unsubscribe", value: { room, events: all ? [] : events, all },
    }, room);
    return joinedView(f.msg.value as PbJoined);
  }

  /**
   * Publishes one event; resolves on its Ack. `data` is either the encoded
   * payload (Uint8Array) or a proto3 JSON object encoded with the server's
   * schema. Sent at most once: a connection lost before the Ack rejects
   * with CLOSED (the event may or may not have been applied).
   */
  async trigger(room: string, event: string, data: Uint8Array | JsonValue): Promise<Ack> {
    let bytes: Uint8Array;
    if (data instanceof Uint8Array) {
      bytes = data;
    } else {
      const s = await this.schema();
      if (!s.message(event))
        throw new DialogueError(0, "NO_SCHEMA", `event ${event} has no message type in the server's schema; give the payload as bytes`);
      try {
        bytes = s.encode(event, data);
      } catch (e) {
        throw new DialogueError(0, "INVALID", `${event}: ${(e as Error).message}`);
      }
    }
    const f = await this.request("trigger", { case: "trigger", value: { room, event, data: bytes } }, room);
    const a = f.msg.value as { seq: bigint; recipients: number };
    return { seq: a.seq, recipients: a.recipients };
  }

  /**
   * Reads what a room keeps (members only). Not a delivery: handlers do not
   * see these events and the room's position does not move.
   */
  async history(room: string, opts: HistoryOptions = {}): Promise<HistoryReply> {
    const bySeq = opts.sinceSeq !== undefined;
    const f = await this.request("history", {
      case: "history",
      value: {
        room, event: opts.event ?? "", start: opts.start ?? 0, limit: opts.limit ?? 0,
        bySeq, sinceSeq: BigInt(opts.sinceSeq ?? 0),
      },
    }, room);
    const b = f.msg.value as PbHistoryBatch;
    return { room: b.room, events: b.events.map(e => this.eventView(e)), complete: b.complete, epoch: b.epoch };
  }

  /** Rooms the client may join or is in; with members, who is in them (when allowed). */
  async listRooms(opts: { members?: boolean } = {}): Promise<RoomInfo[]> {
    const f = await this.request("listRooms", { case: "listRooms", value: { members: opts.members ?? false } }, "");
    return (f.msg.value as { rooms: PbRoomInfo[] }).rooms.map(roomView);
  }

  /** Round trip in ms. */
  async ping(): Promise<number> {
    const t0 = (globalThis.performance ?? Date).now();
    await this.request("ping", { case: "ping", value: { nonce: BigInt(Math.floor(Math.random() * 2 ** 32)) } }, "");
    return (globalThis.performance ?? Date).now() - t0;
  }

  /**
   * The server's event types: the one fetched after the last Welcome (with
   * options.decode), or asked for now.
   */
  async schema(): Promise<EventSchema> {
    if (!this.schemaIn && this.conn?.holding)
      await new Promise<void>(r => this.schemaWaiters.push(r));
    if (this.schemaIn) return this.schemaV;
    const f = await this.request("getSchema", { case: "getSchema", value: {} }, "");
    this.setSchema(f);
    return this.schemaV;
  }

  async createRoom(room: string, opts: {
    name?: string; description?: string; events?: string[]; defaultSubscriptions?: string[];
    maxSize?: number; join?: string[]; trigger?: string[];
  } = {}): Promise<void> {
    await this.request("createRoom", { case: "createRoom", value: {
      room, name: opts.name ?? "", description: opts.description ?? "", events: opts.events ?? [],
      defaultSubscriptions: opts.defaultSubscriptions ?? [], maxSize: opts.maxSize ?? 0,
      join: opts.join ?? [], trigger: opts.trigger ?? [],
    } }, room);
  }

  async deleteRoom(room: string): Promise<void> {
    await this.request("deleteRoom", { case: "deleteRoom", value: { room } }, room);
  }

  // ---- internals: requests ----------------------------------------------

  private log(level: LogLevel, msg: string): void {
    if (this.logFn) callUser(this.logFn, level, msg);
  }

  private pack(id: bigint, msg: MsgInit): Uint8Array {
    return toBinary(ClientFrameSchema, create(ClientFrameSchema, { requestId: id, msg }));
  }

  private request(kind: ReqKind, msg: MsgInit, room: string,
                  owner: "user" | "restore" = "user"): Promise<ServerFrame> {
    return new Promise<ServerFrame>((resolve, reject) => {
      if (owner === "user") {
        if (this.st === "closed" || this.closing)
          return reject(new DialogueError(0, "CLOSED", `${kind}: the client is closed`));
        if (this.st !== "connecting" && this.st !== "connected")
          return reject(new DialogueError(0, "CLOSED", `${kind}: not connected${this.reason ? ` (${this.reason})` : ""}`));
        if (this.reqs.size >= this.o.maxPending)
          return reject(new DialogueError(0, "FULL", `${kind}: ${this.o.maxPending} requests are already waiting (maxPending)`));
      }
      const id = this.nextId++;
      const bytes = this.pack(id, msg);
      if (this.serverMaxFrame && bytes.length > this.serverMaxFrame)
        return reject(new DialogueError(0, "TOO_BIG", `${kind}: frame of ${bytes.length} bytes is above the server's max_frame ${this.serverMaxFrame}`));
      const r: Req = { id, kind, room, bytes, sent: false, owner, t0: now(), resolve, reject };
      r.timer = setTimeout(() => {
        if (this.reqs.get(id) !== r) return;
        this.reqs.delete(id);
        reject(new DialogueError(0, "TIMEOUT", `${kind}${room ? ` ${room}` : ""}: no reply within ${this.o.requestTimeoutMs} ms`));
      }, this.o.requestTimeoutMs);
      this.reqs.set(id, r);
      const c = this.conn;
      if (c && c.phase === "ready") this.sendReq(c, r);
    });
  }

  private sendReq(c: Conn, r: Req): void {
    r.sent = true;
    try {
      c.ws.send(r.bytes);
    } catch (e) {
      // The socket is going; its close event fails the request.
      this.log("debug", `send failed: ${(e as Error).message}`);
    }
  }

  private sendRaw(c: Conn, msg: MsgInit): bigint {
    const id = this.nextId++;
    try {
      c.ws.send(this.pack(id, msg));
    } catch (e) {
      this.log("debug", `send failed: ${(e as Error).message}`);
    }
    return id;
  }

  /** Completes every request with CLOSED: user ones always, restore ones silently. */
  private failRequests(why: string): void {
    for (const [id, r] of [...this.reqs]) {
      this.reqs.delete(id);
      if (r.timer) clearTimeout(r.timer);
      if (r.owner === "user")
        r.reject(new DialogueError(0, "CLOSED", `${r.kind}${r.room ? ` ${r.room}` : ""}: ${why}`));
    }
  }

  private rejectConnectWaiters(e: Error): void {
    const w = this.connectWaiters;
    this.connectWaiters = [];
    for (const x of w) x.reject(e);
  }

  private flushCloseWaiters(): void {
    const w = this.closeWaiters;
    this.closeWaiters = [];
    for (const f of w) f();
  }

  private setState(s: State, reason: string): void {
    if (this.st === "closed") return;
    this.st = s;
    if (s === "disconnected") this.reason = reason;
    for (const cb of [...this.stateCbs]) callUser(cb, s, reason);
  }

  // ---- internals: the connection ------------------------------------------

  private startAttempt(): void {
    this.retryTimer = undefined;
    let ws: WebSocketLike;
    this.setState("connecting", "");
    try {
      ws = this.socket(this.o.url, SUBPROTOCOL);
    } catch (e) {
      this.attemptFailed(`cannot open ${this.o.url}: ${(e as Error).message}`, false);
      return;
    }
    const conn: Conn = {
      ws, phase: "open", helloId: 0n, lastRx: now(), serverError: "", socketError: "",
      holding: false, held: [], schemaRid: 0n,
    };
    this.conn = conn;
    ws.binaryType = "arraybuffer";
    conn.connectTimer = setTimeout(() => {
      this.connFail(conn, `no Welcome from ${this.o.url} within ${this.o.connectTimeoutMs} ms`, false);
    }, this.o.connectTimeoutMs);
    ws.onopen = () => {
      if (conn !== this.conn) return;
      if (ws.protocol !== SUBPROTOCOL) {
        this.connFail(conn, `${this.o.url} did not accept the subprotocol ${SUBPROTOCOL} (it chose "${ws.protocol}")`, false);
        return;
      }
      conn.phase = "hello";
      conn.helloId = this.sendRaw(conn, {
        case: "hello",
        value: { protocolVersion: 1, token: this.o.token, clientName: this.o.clientName },
      });
    };
    ws.onmessage = ev => this.onMessage(conn, ev.data);
    ws.onerror = ev => {
      const m = (ev as { message?: string; error?: Error })?.message ??
        (ev as { error?: Error })?.error?.message;
      if (m) conn.socketError = m;
    };
    ws.onclose = ev => {
      if (conn !== this.conn) {
        if (!this.conn) this.flushCloseWaiters();
        return;
      }
      let why = conn.serverError;
      if (!why) {
        if (ev.code >= 4000 && ev.code < 4100)
          why = `${statusName(ev.code - 4000)}: ${ev.reason}`;
        else if (conn.phase === "open")
          why = `cannot connect to ${this.o.url}${conn.socketError ? `: ${conn.socketError}` : ""} (WebSocket close ${ev.code})`;
        else
          why = `connection to ${this.o.url} lost${conn.socketError ? `: ${conn.socketError}` : ""} (WebSocket close ${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`;
      } else {
        why = `server closed the connection: ${why}`;
      }
      this.connFail(conn, why, false, true);
    };
  }

  private teardown(conn: Conn, code: number, reason: string): void {
    conn.phase = "dead";
    if (conn.connectTimer) clearTimeout(conn.connectTimer);
    if (conn.watchdog) clearInterval(conn.watchdog);
    conn.held = [];
    try {
      conn.ws.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  /** The connection (or attempt) ends: requests fail, maybe a retry. */
  private connFail(conn: Conn, reason: string, fatal: boolean, closed = false): void {
    if (conn !== this.conn) return;
    const wasReady = conn.phase === "ready";
    if (!closed) this.teardown(conn, 1000, "");
    else {
      conn.phase = "dead";
      if (conn.connectTimer) clearTimeout(conn.connectTimer);
      if (conn.watchdog) clearInterval(conn.watchdog);
    }
    this.conn = null;
    this.posDisconnected();
    const sw = this.schemaWaiters;
    this.schemaWaiters = [];
    for (const w of sw) w();
    this.log("info", reason);
    this.failRequests(wasReady ? "connection lost before the reply" : `connection attempt failed: ${reason}`);
    this.attemptFailed(reason, fatal);
    if (closed) this.flushCloseWaiters();
  }

  private attemptFailed(reason: string, fatal: boolean): void {
    this.setState("disconnected", reason);
    if (this.closing) return;
    if (!this.o.reconnect || fatal) {
      this.rejectConnectWaiters(new DialogueError(0, "CLOSED", reason));
      return;
    }
    const d = backoffMs(this.o.backoffMinMs, this.o.backoffMaxMs, this.o.backoffJitter, this.attempt++);
    this.log("info", `reconnecting to ${this.o.url} in ${d} ms`);
    this.retryTimer = setTimeout(() => this.startAttempt(), d);
  }

  private onMessage(conn: Conn, data: unknown): void {
    if (conn !== this.conn || conn.phase === "dead") return;
    if (!(data instanceof ArrayBuffer)) {
      this.connFail(conn, "protocol error: the server sent a text message", false);
      return;
    }
    conn.lastRx = now();
    if (data.byteLength > this.o.maxFrame) {
      this.connFail(conn, `server sent a frame of ${data.byteLength} bytes, above max_frame ${this.o.maxFrame}`, false);
      return;
    }
    let f: ServerFrame;
    try {
      f = fromBinary(ServerFrameSchema, new Uint8Array(data));
    } catch {
      this.connFail(conn, `protocol error: a ${data.byteLength}-byte frame from the server does not decode`, false);
      return;
    }
    if (conn.holding) {
      if (f.requestId === conn.schemaRid) {
        this.completeSchemaHold(conn, f);
        return;
      }
      if (f.msg.case === "ping" && f.requestId === 0n) {
        this.sendRaw(conn, { case: "pong", value: { nonce: f.msg.value.nonce } });
        return;
      }
      conn.held.push(f);
      return;
    }
    this.handleFrame(conn, f);
  }

  /** The schema asked for after Welcome is in: the held frames go on, in order. */
  private completeSchemaHold(conn: Conn, f: ServerFrame | null): void {
    const r = this.reqs.get(conn.schemaRid);
    if (r) {
      this.reqs.delete(conn.schemaRid);
      if (r.timer) clearTimeout(r.timer);
    }
    if (!f) {
      // Timed out: a late reply is ignored as an unknown request's.
    } else if (f.msg.case === "schema") {
      this.setSchema(f);
    } else {
      this.log("warn", `no schema from the server (${f.msg.case === "error" ? `${statusName(f.msg.value.code)}: ${f.msg.value.message}` : f.msg.case}); payloads stay undecoded`);
    }
    conn.holding = false;
    const sw = this.schemaWaiters;
    this.schemaWaiters = [];
    for (const w of sw) w();
    const held = conn.held;
    conn.held = [];
    for (const h of held) {
      if (this.conn !== conn || conn.phase === "dead") return;
      this.handleFrame(conn, h);
    }
  }

  private setSchema(f: ServerFrame): void {
    if (f.msg.case !== "schema") return;
    try {
      this.schemaV = EventSchema.fromReply(f.msg.value);
      this.schemaIn = true;
    } catch (e) {
      this.log("warn", `the server's schema does not parse: ${(e as Error).message}`);
    }
  }

  private handleFrame(conn: Conn, f: ServerFrame): void {
    if (conn.phase === "hello") {
      this.beforeWelcome(conn, f);
      return;
    }
    if (this.posFrame(f) || this.conn !== conn) return;
    if (f.requestId === 0n) {
      this.serverPush(conn, f);
      return;
    }
    const r = this.reqs.get(f.requestId);
    if (!r || !r.sent) {
      this.log("debug", `ignoring ${f.msg.case} for unknown request ${f.requestId}`);
      return;
    }
    this.reqs.delete(r.id);
    if (r.timer) clearTimeout(r.timer);
    const mc = f.msg.case;
    if (mc !== "error" && mc !== EXPECT[r.kind]) {
      const why = `protocol error: server answered ${r.kind}${r.room ? ` ${r.room}` : ""} with ${mc}`;
      if (r.owner === "user") r.reject(new DialogueError(0, "PROTOCOL", why));
      this.connFail(conn, why, false);
      return;
    }
    if (r.owner === "restore") {
      this.restoreReply(conn, r, f);
      return;
    }
    if (f.msg.case === "error") {
      r.reject(DialogueError.fromServer(f.msg.value.code, f.msg.value.message));
      return;
    }
    // The record follows what the server confirmed, so a reconnect restores exactly this.
    if (f.msg.case === "joined") {
      const j = f.msg.value;
      const rm = this.roomSet(r.room, j.subscriptions);
      this.posJoined(rm, j, r.id, r.kind === "join", false);
    } else if (r.kind === "leave") {
      this.rooms.delete(r.room);
    }
    r.resolve(f);
  }

  private beforeWelcome(conn: Conn, f: ServerFrame): void {
    switch (f.msg.case) {
      case "welcome":
        this.onWelcome(conn, f.msg.value);
        return;
      case "ping":
        this.sendRaw(conn, { case: "pong", value: { nonce: f.msg.value.nonce } });
        return;
      case "error": {
        const code = f.msg.value.code;
        // Credentials or protocol version: another attempt cannot help.
        const fatal = code === 16 || code === 7 || code === 9;
        this.connFail(conn, `server refused Hello: ${statusName(code)}: ${f.msg.value.message}`, fatal);
        return;
      }
      default:
        this.connFail(conn, `protocol error: server sent ${f.msg.case ?? "an empty frame"} before Welcome`, false);
    }
  }

  private onWelcome(conn: Conn, w: PbWelcome): void {
    conn.phase = "ready";
    if (conn.connectTimer) clearTimeout(conn.connectTimer);
    this.attempt = 0;
    this.serverMaxFrame = w.maxFrame;
    this.heartbeatMs = w.heartbeatMs;
    if (this.heartbeatMs > 0) {
      const hb = this.heartbeatMs;
      // The server pings a quiet client every heartbeat, so three periods of silence mean the path is dead.
      conn.watchdog = setInterval(() => {
        const quiet = now() - conn.lastRx;
        if (quiet >= 3 * hb) this.connFail(conn, `nothing from ${this.o.url} for ${quiet} ms (heartbeat ${hb} ms)`, false);
      }, hb);
    }
    this.welcomeV = {
      clientId: w.clientId, userId: w.userId, serverVersion: w.serverVersion,
      heartbeatMs: w.heartbeatMs, roles: [...w.roles], maxFrame: w.maxFrame,
      autoJoined: w.autoJoined.map(joinedView), identityKind: kindName(w.identityKind),
    };
    this.log("info", `connected to ${this.o.url} as ${w.clientId} (server ${w.serverVersion})`);
    if (this.o.decode) {
      // Events are held until the schema is in, so every one is decoded.
      conn.holding = true;
      this.schemaIn = false;
      const id = this.nextId++;
      conn.schemaRid = id;
      const bytes = this.pack(id, { case: "getSchema", value: {} });
      const r: Req = {
        id, kind: "getSchema", room: "", bytes, sent: false, owner: "restore", t0: now(),
        resolve: () => {}, reject: () => {},
      };
      // A server that never answers must not hold the events for ever.
      r.timer = setTimeout(() => {
        if (this.conn !== conn || !conn.holding) return;
        this.log("warn", `no schema from the server within ${this.o.requestTimeoutMs} ms; payloads stay undecoded`);
        this.completeSchemaHold(conn, null);
      }, this.o.requestTimeoutMs);
      this.reqs.set(id, r);
      this.sendReq(conn, r);
    }
    for (const rm of this.rooms.values()) {
      rm.inRestore = true;
      rm.autoJoined = false;
    }
    // Rooms the server joined for us: record new ones, fix the subscriptions of recorded ones.
    for (const j of w.autoJoined) {
      let rm = this.rooms.get(j.room);
      if (!rm) {
        rm = this.roomSet(j.room, j.subscriptions);
        rm.autoJoined = true;
        rm.inRestore = false;
        this.posJoined(rm, j, conn.helloId, true, false);
        continue;
      }
      rm.inRestore = false;
      rm.autoJoined = true;
      this.posJoined(rm, j, conn.helloId, true, false);
      this.resubscribe(conn, rm, j.subscriptions);
    }
    for (const rm of this.rooms.values()) {
      if (!rm.inRestore) continue;
      this.restoreSend(conn, "join", { case: "join", value: this.rejoinMsg(rm) }, rm.room);
    }
    for (const r of this.reqs.values())
      if (!r.sent && r.owner === "user") this.sendReq(conn, r);
    if (this.conn !== conn) return;
    this.setState("connected", "");
    const cw = this.connectWaiters;
    this.connectWaiters = [];
    for (const x of cw) x.resolve(this.welcomeV);
  }

  private serverPush(conn: Conn, f: ServerFrame): void {
    switch (f.msg.case) {
      case "event":
        this.dispatchEvent(f.msg.value);
        return;
      case "ping":
        this.sendRaw(conn, { case: "pong", value: { nonce: f.msg.value.nonce } });
        return;
      case "left": {
        const l = f.msg.value;
        if (!this.rooms.has(l.room)) return;
        this.rooms.delete(l.room);
        this.notifyLeft(l.room, l.reason);
        return;
      }
      case "error":
        // Usually the last words before the server closes: kept as the disconnect reason.
        conn.serverError = `${statusName(f.msg.value.code)}: ${f.msg.value.message}`;
        this.log("warn", `server error: ${conn.serverError}`);
        return;
      case "gap":
        this.posGap(f.msg.value);
        return;
      case "welcome":
        this.connFail(conn, "protocol error: server sent a second Welcome", false);
        return;
      default:
        this.log("debug", `ignoring unsolicited ${f.msg.case}`);
    }
  }

  private notifyLeft(room: string, reason: string): void {
    for (const cb of [...this.leftCbs]) callUser(cb, room, reason);
  }

  // ---- internals: restore --------------------------------------------------

  private roomSet(room: string, subs: string[]): RoomRec {
    let rm = this.rooms.get(room);
    if (!rm) {
      rm = {
        room, subs: [], known: false, epoch: 0n, seq: 0n, floor: 0n, pendRid: 0n, pendEpoch: 0n,
        pendSeq: 0n, pendRecover: false, inRestore: false, autoJoined: false, rejoinRecover: false,
      };
      this.rooms.set(room, rm);
    }
    rm.subs = [...subs];
    return rm;
  }

  private restoreSend(conn: Conn, kind: ReqKind, msg: MsgInit, room: string): void {
    this.log("debug", `restore: ${kind} ${room}`);
    // Sent at once (the connection is ready); a failure ends in restoreReply or nowhere.
    void conn;
    this.request(kind, msg, room, "restore").catch(() => {});
  }

  private restoreSubscription(conn: Conn, unsub: boolean, room: string, events: string[], all: boolean): void {
    const kind = unsub ? "unsubscribe" : "subscribe";
    this.restoreSend(conn, kind, { case: kind, value: { room, events, all } }, room);
  }

  /** Brings the server's subscriptions (got) back to the recorded ones: session.c resubscribe. */
  private resubscribe(conn: Conn, rm: RoomRec, got: string[]): void {
    const want = rm.subs;
    const wantAll = want.includes("*");
    const gotAll = got.includes("*");
    if (wantAll) {
      if (!gotAll) this.restoreSubscription(conn, false, rm.room, [], true);
      return;
    }
    if (gotAll) {
      this.restoreSubscription(conn, true, rm.room, [], true);
      if (want.length) this.restoreSubscription(conn, false, rm.room, want, false);
      return;
    }
    const drop = got.filter(e => !want.includes(e));
    if (drop.length) this.restoreSubscription(conn, true, rm.room, drop, false);
    const add = want.filter(e => !got.includes(e));
    if (add.length) this.restoreSubscription(conn, false, rm.room, add, false);
  }

  private restoreReply(conn: Conn, r: Req, f: ServerFrame): void {
    const rm = this.rooms.get(r.room);
    if (!rm) return; // left while the rejoin was in flight
    if (f.msg.case === "error") {
      const e = f.msg.value;
      if (r.kind !== "join") {
        this.log("warn", `restoring subscriptions of ${r.room}: ${statusName(e.code)}: ${e.message}`);
        return;
      }
      if (e.code === 6) return; // ALREADY_EXISTS: joined after all
      if (e.code === 14 && rm.rejoinRecover) {
        // UNAVAILABLE: this node has not reached the position yet; nothing is lost, so the room stays.
        this.connFail(conn, `recovery of room ${r.room} refused: ${e.message}`, false);
        return;
      }
      this.rooms.delete(r.room);
      this.notifyLeft(r.room, `rejoin refused: ${statusName(e.code)}: ${e.message}`);
      return;
    }
    if (r.kind === "join" && f.msg.case === "joined") {
      rm.inRestore = false;
      this.posJoined(rm, f.msg.value, r.id, true, rm.rejoinRecover);
      this.resubscribe(conn, rm, f.msg.value.subscriptions);
    }
  }

  private rejoinMsg(rm: RoomRec): { room: string; recover: boolean; epoch: bigint; sinceSeq: bigint } {
    // Without a known epoch there is nothing to recover from: a plain Join.
    rm.rejoinRecover = rm.known;
    if (!rm.known) return { room: rm.room, recover: false, epoch: 0n, sinceSeq: 0n };
    return { room: rm.room, recover: true, epoch: rm.epoch, sinceSeq: this.position(rm) };
  }

  // ---- internals: positions (recover.c) -----------------------------------

  /** Everything up to here was delivered or is not owed. */
  private position(rm: RoomRec): bigint {
    return maxBig(rm.seq, rm.floor);
  }

  private posAccept(e: PbEvent): boolean {
    const rm = this.rooms.get(e.room);
    if (!rm) return true;
    // Seq 0: a system event that is not numbered (presence:join/leave); it
    // is neither a duplicate nor a position.
    if (e.seq === 0n) return true;
    if (rm.known && rm.epoch === e.epoch) {
      if (e.seq <= this.position(rm)) return false;
    } else {
      // Another lineage: seqs of the old one say nothing about it.
      rm.known = true;
      rm.epoch = e.epoch;
      rm.floor = 0n;
    }
    rm.seq = e.seq;
    return true;
  }

  private advance(rm: RoomRec, epoch: bigint, seq: bigint): void {
    if (!rm.known || rm.epoch !== epoch) {
      rm.known = true;
      rm.epoch = epoch;
      rm.seq = 0n;
      rm.floor = 0n;
    }
    rm.floor = maxBig(rm.floor, seq);
  }

  private posJoined(rm: RoomRec, j: PbJoined, rid: bigint, batch: boolean, recover: boolean): void {
    if (!batch) {
      this.advance(rm, j.epoch, j.seq);
      return;
    }
    // The batch holds events up to j.seq: settling now would make them look like duplicates.
    this.pendAny = true;
    rm.pendRid = rid;
    rm.pendEpoch = j.epoch;
    rm.pendSeq = j.seq;
    rm.pendRecover = recover;
  }

  private posDisconnected(): void {
    for (const rm of this.rooms.values()) rm.pendRid = 0n;
    this.pendAny = false;
  }

  private findGap(rm: RoomRec, b: PbHistoryBatch | null): Gap | null {
    const pos = this.position(rm);
    const g: Gap = { room: rm.room, reason: "", epochChanged: false, oldEpoch: rm.epoch, sinceSeq: pos, epoch: rm.pendEpoch };
    if (rm.known && rm.epoch !== rm.pendEpoch) {
      g.epochChanged = true;
      g.reason = `room ${rm.room}: epoch changed from ${rm.epoch} to ${rm.pendEpoch} (the server lost its history); events after seq ${pos} are lost`;
      return g;
    }
    if (!rm.pendRecover || (b && b.complete)) return null;
    if (!b)
      g.reason = `room ${rm.room}: the server sent no recovery batch; events after seq ${pos} may be lost`;
    else if (rm.pendSeq < pos)
      g.reason = `room ${rm.room}: the server is at seq ${rm.pendSeq}, behind this client's ${pos} (history lost); events after it are lost`;
    else
      g.reason = `room ${rm.room}: some events after seq ${pos} are no longer kept (history limit or age, damaged in the server's store, or too many for one frame); the ${b.events.length} still kept follow`;
    return g;
  }

  private wanted(rm: RoomRec, event: string): boolean {
    return rm.subs.includes("*") || rm.subs.includes(event);
  }

  /** Ends the wait for rm's batch b (null: none is coming): gap report, the batch's events, the position. */
  private finish(rm: RoomRec, b: PbHistoryBatch | null): void {
    const conn = this.conn;
    const epoch = rm.pendEpoch, seq = rm.pendSeq, recover = rm.pendRecover;
    rm.pendRid = 0n;
    const g = this.findGap(rm, b);
    if (g) {
      this.log("warn", g.reason);
      for (const cb of [...this.gapCbs]) callUser(cb, g);
    }
    for (const e of b ? b.events : []) {
      if (this.conn !== conn || this.closing) return;
      if (e.room !== rm.room) {
        this.log("warn", `ignoring an event of room ${e.room} in the history batch of ${rm.room}`);
        continue;
      }
      // A recovery batch follows the new membership's subscriptions, not the restored ones.
      if (recover && !this.wanted(rm, e.event)) continue;
      this.dispatchEvent(e);
    }
    if (this.conn === conn) this.advance(rm, epoch, seq);
  }

  /** Returns true when f was a sync or recovery batch, delivered. */
  private posFrame(f: ServerFrame): boolean {
    if (f.msg.case === "historyBatch" && f.requestId !== 0n) {
      const b = f.msg.value;
      const rm = this.rooms.get(b.room);
      if (rm && rm.pendRid === f.requestId) {
        this.finish(rm, b);
        this.pendAny = [...this.rooms.values()].some(x => x.pendRid !== 0n);
        return true;
      }
    }
    if (!this.pendAny) return false;
    // Not the batch: the server sends it right after its Joined, so rooms still waiting get none.
    this.pendAny = false;
    const conn = this.conn;
    for (const rm of [...this.rooms.values()]) {
      if (this.conn !== conn) break;
      if (rm.pendRid !== 0n) this.finish(rm, null);
    }
    return false;
  }

  private posGap(gp: PbGap): void {
    const rm = this.rooms.get(gp.room);
    if (!rm) return;
    const g: Gap = {
      room: rm.room, epochChanged: false, oldEpoch: rm.epoch, sinceSeq: gp.seq, epoch: gp.epoch,
      reason: `room ${rm.room}: events after seq ${gp.seq} may be lost (the server says: ${gp.reason || "no reason given"})`,
    };
    this.log("warn", g.reason);
    for (const cb of [...this.gapCbs]) callUser(cb, g);
  }

  // ---- internals: events ----------------------------------------------------

  private eventView(e: PbEvent): DialogueEvent {
    const ev: DialogueEvent = {
      room: e.room, event: e.event, payload: e.data, from: e.from, fromKind: kindName(e.fromKind),
      ts: Number(e.tsMs), seq: e.seq, epoch: e.epoch,
    };
    if (this.o.decode || this.schemaIn) {
      if (!this.schemaV.message(e.event)) {
        ev.decodeError = `event ${e.event} has no message type in the server's schema`;
      } else {
        try {
          ev.data = this.schemaV.decode(e.event, e.data);
        } catch (x) {
          ev.decodeError = (x as Error).message;
        }
      }
    }
    return ev;
  }

  private dispatchEvent(e: PbEvent): void {
    if (!this.posAccept(e)) {
      this.log("debug", `dropping duplicate event ${e.event} seq ${e.seq} of room ${e.room}`);
      return;
    }
    const ev = this.eventView(e);
    // Handlers added during the dispatch wait for the next event.
    const hs = this.handlers;
    this.dispatching++;
    try {
      for (const h of hs) {
        if (!this.handlers.includes(h)) continue;
        if ((h.room !== null && h.room !== e.room) || (h.event !== null && h.event !== e.event)) continue;
        callUser(h.cb, ev);
      }
    } finally {
      this.dispatching--;
    }
  }
}
