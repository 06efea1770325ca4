// errors.ts: the error every failed request rejects with, and the names of
// the dialogue.v1.Status codes.

/** dialogue.v1.Status names by number (gRPC's codes). */
export const STATUS_NAMES: readonly string[] = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** The name of a dialogue.v1.Status number ("PERMISSION_DENIED"), or "STATUS_n". */
export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `STATUS_${status}`;
}

/**
 * Why a request failed, as libdialogue-client's callback status says it:
 * - `status > 0`: the server answered with Error{code, message}; `code` is
 *   the status name ("PERMISSION_DENIED") and `message` the server's text.
 * - `status === 0`: a local failure; `code` says which: "CLOSED" (not
 *   connected, or the connection was lost before the reply), "TIMEOUT",
 *   "TOO_BIG" (above the server's max_frame), "PROTOCOL" (the server
 *   answered with the wrong message), "INVALID" (bad arguments or a payload
 *   that does not fit the event's schema), "NO_SCHEMA".
 */
export class DialogueError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(status > 0 ? `${code}: ${message}` : message);
    this.name = "DialogueError";
    this.status = status;
    this.code = code;
  }

  /** The server's Error{code, message} as a DialogueError. */
  static fromServer(status: number, message: string): DialogueError {
    // An Error claiming OK is nonsense: report it as UNKNOWN, as the C client does.
    const st = status > 0 ? status : 2;
    const e = new DialogueError(st, statusName(st), message);
    return e;
  }

  /** The text alone, without the status prefix (the server's own words). */
  get serverMessage(): string {
    if (this.status <= 0) return this.message;
    return this.message.slice(this.code.length + 2);
  }
}
