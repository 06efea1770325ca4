// schema.ts: the server's event types (GetSchema: descriptor sets and the
// event -> message type table) turned into decoders and encoders, so event
// payloads are read as plain objects (proto3 JSON: the same objects
// `dialoguectl sub` prints under "data") and triggers may be given as such.
import {
  createFileRegistry, fromBinary, fromJson, toBinary, toJson,
  type DescMessage, type FileRegistry, type JsonValue,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { PresenceChangeSchema, type Schema } from "./gen/dialogue/v1/protocol_pb.js";

/**
 * The server's own events: not in its schema reply, their message is part
 * of the protocol (docs/protocol.md, Presence).
 */
const SYSTEM_EVENTS: ReadonlyMap<string, DescMessage> = new Map([
  ["presence:join", PresenceChangeSchema],
  ["presence:leave", PresenceChangeSchema],
]);

/** One event type the server knows: its name and protobuf message. */
export interface EventType {
  name: string;
  messageType: string;
}

/**
 * The server's event types. Built from a Schema reply; lookups by event
 * name ("metrics:update").
 */
export class EventSchema {
  readonly events: readonly EventType[];
  private readonly registry: FileRegistry | undefined;
  private readonly byEvent = new Map<string, DescMessage>();

  /** An empty schema: every payload stays raw. */
  static empty(): EventSchema {
    return new EventSchema([], []);
  }

  /**
   * Reads the Schema reply. Each descriptor set repeats what it imports, so
   * each parses on its own; a type found in several comes from the last.
   * Throws when a descriptor set does not parse (the server's fault).
   */
  static fromReply(s: Schema): EventSchema {
    return new EventSchema(s.descriptorSets, s.events.map(e => ({
      name: e.name, messageType: e.messageType,
    })));
  }

  private constructor(sets: Uint8Array[], events: EventType[]) {
    this.events = events;
    const regs = sets.map(b => createFileRegistry(fromBinary(FileDescriptorSetSchema, b)));
    this.registry = regs.length ? createFileRegistry(...regs) : undefined;
    for (const e of events) {
      const d = this.registry?.getMessage(e.messageType);
      if (d) this.byEvent.set(e.name, d);
    }
  }

  /** The message descriptor of `event` (the server's own events included), or undefined. */
  message(event: string): DescMessage | undefined {
    return this.byEvent.get(event) ?? SYSTEM_EVENTS.get(event);
  }

  /**
   * Decodes a payload of `event` into its proto3 JSON object (64-bit
   * integers as strings, enums by name, lowerCamelCase keys). Throws
   * when the event has no type or the bytes do not decode.
   */
  decode(event: string, data: Uint8Array): JsonValue {
    const sys = SYSTEM_EVENTS.get(event);
    if (sys && !this.byEvent.has(event)) {
      // Every field, zeros too: a count of 0 members is news.
      return toJson(sys, fromBinary(sys, data), { alwaysEmitImplicit: true });
    }
    const d = this.byEvent.get(event);
    if (!d) throw new Error(`event ${event} has no message type in the server's schema`);
    return toJson(d, fromBinary(d, data), { registry: this.registry });
  }

  /**
   * Encodes a proto3 JSON object as a payload of `event`. Throws, naming
   * the field, when the object does not fit the message.
   */
  encode(event: string, value: JsonValue): Uint8Array {
    const d = this.byEvent.get(event);
    if (!d) throw new Error(`event ${event} has no message type in the server's schema`);
    return toBinary(d, fromJson(d, value, { registry: this.registry }));
  }
}
