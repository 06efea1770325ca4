// index.ts: the package's entry for browsers (and any runtime with a global
// WebSocket). Node programs get node.ts, which brings the `ws` package.
export {
  Client, SUBPROTOCOL,
  type ClientOptions, type State, type DialogueEvent, type Joined, type Welcome, type Ack,
  type HistoryReply, type HistoryOptions, type RoomInfo, type Gap, type EventHandler,
  type IdentityKindName, type WebSocketLike, type SocketFactory, type LogLevel,
} from "./client.js";
export { DialogueError, statusName, STATUS_NAMES } from "./errors.js";
export { EventSchema, type EventType } from "./schema.js";
export { backoffMs } from "./backoff.js";
