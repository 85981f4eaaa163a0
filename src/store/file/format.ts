import { randomBytes } from 'node:crypto';
import type { AttemptRecord, DeadReason, NewEvent } from '../store.js';
import { crc32c } from './crc32c.js';

/**
 * The on-disk format of a journal segment, version 3 (little-endian throughout).
 *
 * Segment header, 20 bytes: `"WHOX"`, u16 version, u16 flags (0), u32 segment id, u32 salt (random per
 * segment), u32 CRC-32C of the first 16 bytes.
 *
 * Then frames of 16 bytes plus a body: u32 head CRC, u32 body length L, u32 head length H, u32 payload
 * CRC, body. The body is a head (`body[0, H)`) and a payload (`body[H, L)`). The head CRC (CRC-32C
 * continued from the segment's salt, see `crc32c`'s seed) covers frame bytes 4..16 and the head, so the
 * lengths and the payload CRC are protected too; the payload CRC covers the payload. Recovery checks
 * heads (small) and the payload of the newest segment; payloads of older segments are checked when they
 * are read back. The salt is what keeps bytes inside a record from passing for a record when recovery
 * searches for the next frame after damage: a webhook body can carry frames whose checksums its sender
 * computed, but not with a salt it never saw.
 *
 * Version 2 is version 3 without the salt: a 16-byte header (no salt field, CRC of the first 12 bytes) and
 * head CRCs that start from no salt (seed 0). Its segments are still read; new segments are version 3.
 *
 * Records refer to an event by where its event record is (segment id, frame offset), which never
 * changes and is never reused, so recovery needs no map from ids to events.
 * - event (1): head = u8 type, u8 flags, u16 id length, u32 url length, u32 headers length, f64 createdAt,
 *   f64 nextAttemptAt, id, url, then with flag 1 (`EVENT_KEY`, written since format 3) the event's ordering key (the
 *   rest of the head). Flag 2 (`EVENT_SUPERSEDE`, only with flag 1) marks an event enqueued with
 *   `supersede: true` (a journal that has one cannot be read by a version that predates the flag: it
 *   would count that record corrupt). Payload = headers (JSON object), body bytes.
 * - state (2): head = u8 type, u8 status (1 pending, 2 dead), u8 dead reason, u8 flags, u32 event segment,
 *   u32 event offset, u32 attempts, f64 createdAt, f64 nextAttemptAt, f64 deadAt, u16 id length, u16 0, id,
 *   then with flag 1 (`STATE_URL`) the URL the event now goes to (the rest of the head; a dead letter
 *   replayed or moved to another endpoint; every later state record of that event repeats it; format 2
 *   segments written since that flag existed hold it too). Payload = history (JSON array). The whole
 *   retry state of an event: the newest state record wins.
 * - tombstone (3): head = u8 type, u8 kind (1 delivered, 2 purged), u16 0, u32 event segment,
 *   u32 event offset. The event is gone.
 */
export const SEGMENT_MAGIC = 0x584f4857;
export const FORMAT_VERSION = 3;
/** Header length of a version 3 segment (version 2: 16 bytes). */
export const HEADER_BYTES = 20;
const V2_HEADER_BYTES = 16;
export const FRAME_BYTES = 16;

export const RECORD_EVENT = 1;
export const RECORD_STATE = 2;
export const RECORD_TOMBSTONE = 3;

const EVENT_FIXED = 28;
const STATE_FIXED = 44;
const TOMBSTONE_FIXED = 12;

export const STATUS_PENDING = 1;
export const STATUS_DEAD = 2;
/** Event record flag: the head ends with the event's ordering key. */
const EVENT_KEY = 1;
/** Event record flag (with `EVENT_KEY`): the event supersedes earlier events of its ordering key. */
const EVENT_SUPERSEDE = 2;
/** State record flag: the head ends with the URL the event goes to, instead of its event record's. */
export const STATE_URL = 1;
export const TOMBSTONE_DELIVERED = 1;
export const TOMBSTONE_PURGED = 2;

// Written as the index: new reasons go at the end (a version that does not know one counts the record corrupt).
const REASONS: readonly DeadReason[] = ['http-status', 'max-age', 'max-attempts', 'invalid', 'endpoint-gone'];

/**
 * A fresh salt for a new segment: unpredictable, so no one outside can compute checksums for it. Never 0,
 * which stands for a version 2 segment.
 */
export function newSalt(): number {
  return randomBytes(4).readUInt32LE(0) || 1;
}

/** The header of a new segment `id` with this salt. */
export function encodeHeader(id: number, salt: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(SEGMENT_MAGIC, 0);
  header.writeUInt16LE(FORMAT_VERSION, 4);
  header.writeUInt16LE(0, 6);
  header.writeUInt32LE(id, 8);
  header.writeUInt32LE(salt, 12);
  header.writeUInt32LE(crc32c(header, 0, 16), 16);
  return header;
}

/**
 * Whether `bytes`, shorter than a header, are the start of one for segment `id` (as far as they go): what
 * a segment whose creation was cut short (a full disk) leaves.
 */
export function isCutShortHeader(bytes: Buffer, id: number): boolean {
  if (bytes.length >= HEADER_BYTES) return false;
  const start = encodeHeader(id, 0).subarray(0, Math.min(bytes.length, 12));
  return bytes.subarray(0, start.length).equals(start);
}

/** A segment's header, read. */
export interface SegmentHeader {
  /** Where its first frame starts. */
  length: number;
  /** The seed of its head checksums (0 in version 2). */
  salt: number;
}

/** The header `bytes` start with, when it is a valid version 2 or 3 header for segment `id`. */
export function readHeader(bytes: Buffer, id: number): SegmentHeader | undefined {
  if (bytes.length < V2_HEADER_BYTES || bytes.readUInt32LE(0) !== SEGMENT_MAGIC || bytes.readUInt32LE(8) !== id) return undefined;
  const version = bytes.readUInt16LE(4);
  if (version === 2 && bytes.readUInt32LE(12) === crc32c(bytes, 0, 12)) return { length: V2_HEADER_BYTES, salt: 0 };
  if (version === FORMAT_VERSION && bytes.length >= HEADER_BYTES && bytes.readUInt32LE(16) === crc32c(bytes, 0, 16)) {
    return { length: HEADER_BYTES, salt: bytes.readUInt32LE(12) };
  }
  return undefined;
}

/**
 * Builds a frame around `head` and `payload` parts (each written by `fill`). Its head checksum is left
 * for {@link sealFrame}: the segment it goes to, and so its salt, is known only when it is written.
 */
function frame(headLength: number, payloadLength: number, fill: (out: Buffer, head: number, payload: number) => void): Buffer {
  const out = Buffer.allocUnsafe(FRAME_BYTES + headLength + payloadLength);
  const payload = FRAME_BYTES + headLength;
  fill(out, FRAME_BYTES, payload);
  out.writeUInt32LE(0, 0);
  out.writeUInt32LE(headLength + payloadLength, 4);
  out.writeUInt32LE(headLength, 8);
  out.writeUInt32LE(crc32c(out, payload, out.length), 12);
  return out;
}

/** Writes the head checksum of the frame at `at` (lengths and payload checksum in place) with a segment's salt. */
export function sealFrame(out: Buffer, at: number, salt: number): void {
  out.writeUInt32LE(crc32c(out, at + 4, at + FRAME_BYTES + u32(out, at + 8), salt), at);
}

/**
 * A batch of event records: measured when appended (so the byte limit is checked before anything is
 * queued) and encoded straight into the group commit's buffer when written, with no buffer per record.
 */
export class EventRecords {
  /** Each record's frame length, in order. */
  readonly lengths: number[];
  /** Total bytes. */
  readonly size: number;
  readonly #events: readonly NewEvent[];
  readonly #headers: string[];

  constructor(events: readonly NewEvent[]) {
    this.#events = events;
    this.#headers = new Array<string>(events.length);
    this.lengths = new Array<number>(events.length);
    let size = 0;
    let names: string[] = [];
    let values: string[] = [];
    let json = '';
    let jsonBytes = 0;
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as NewEvent;
      // Events of a batch mostly carry equal headers: serialise them again only when they differ.
      if (i === 0 || !sameHeaders(event.headers, names, values)) {
        json = JSON.stringify(event.headers);
        jsonBytes = Buffer.byteLength(json);
        names = Object.keys(event.headers);
        values = names.map((name) => event.headers[name] as string);
      }
      this.#headers[i] = json;
      const key = event.orderingKey === undefined ? 0 : Buffer.byteLength(event.orderingKey);
      const length =
        FRAME_BYTES + EVENT_FIXED + Buffer.byteLength(event.id) + Buffer.byteLength(event.url) + key + jsonBytes + event.body.byteLength;
      this.lengths[i] = length;
      size += length;
    }
    this.size = size;
  }

  /** Writes the frames into `out` from `at`, for a segment with this salt. */
  encodeInto(out: Buffer, at: number, salt: number): void {
    const events = this.#events;
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as NewEvent;
      const h = at + FRAME_BYTES;
      const urlAt = h + EVENT_FIXED + out.write(event.id, h + EVENT_FIXED);
      const keyAt = urlAt + out.write(event.url, urlAt);
      const payload = event.orderingKey === undefined ? keyAt : keyAt + out.write(event.orderingKey, keyAt);
      const headersLength = out.write(this.#headers[i] as string, payload);
      out.set(event.body, payload + headersLength);
      const end = payload + headersLength + event.body.byteLength;
      out.writeUInt8(RECORD_EVENT, h);
      out.writeUInt8(event.orderingKey === undefined ? 0 : event.supersede === true ? EVENT_KEY | EVENT_SUPERSEDE : EVENT_KEY, h + 1);
      out.writeUInt16LE(urlAt - h - EVENT_FIXED, h + 2);
      out.writeUInt32LE(keyAt - urlAt, h + 4);
      out.writeUInt32LE(headersLength, h + 8);
      out.writeDoubleLE(event.createdAt, h + 12);
      out.writeDoubleLE(event.nextAttemptAt, h + 20);
      out.writeUInt32LE(end - h, at + 4);
      out.writeUInt32LE(payload - h, at + 8);
      out.writeUInt32LE(crc32c(out, payload, end), at + 12);
      out.writeUInt32LE(crc32c(out, at + 4, payload, salt), at);
      at = end;
    }
  }
}

/** Whether `headers` has exactly these own properties, in this order, with these values. */
function sameHeaders(headers: Record<string, string>, names: readonly string[], values: readonly string[]): boolean {
  let i = 0;
  for (const name in headers) {
    if (name !== names[i] || headers[name] !== values[i] || !Object.hasOwn(headers, name)) return false;
    i++;
  }
  return i === names.length;
}

/** Where an event record is: the reference state records and tombstones carry. */
export interface EventRef {
  seg: number;
  off: number;
}

/** Encodes a state record frame (to be sealed when written). */
export function encodeState(state: {
  id: string;
  event: EventRef;
  dead: DeadReason | undefined;
  attempts: number;
  createdAt: number;
  nextAttemptAt: number;
  deadAt: number;
  history: readonly AttemptRecord[];
  /** The URL the event goes to when it is not its event record's. */
  url?: string | undefined;
}): Buffer {
  const id = Buffer.from(state.id);
  const url = state.url === undefined ? undefined : Buffer.from(state.url);
  const history = Buffer.from(JSON.stringify(state.history));
  return frame(STATE_FIXED + id.length + (url?.length ?? 0), history.length, (out, h, p) => {
    out.writeUInt8(RECORD_STATE, h);
    out.writeUInt8(state.dead === undefined ? STATUS_PENDING : STATUS_DEAD, h + 1);
    out.writeUInt8(state.dead === undefined ? 0 : REASONS.indexOf(state.dead), h + 2);
    out.writeUInt8(url === undefined ? 0 : STATE_URL, h + 3);
    out.writeUInt32LE(state.event.seg, h + 4);
    out.writeUInt32LE(state.event.off, h + 8);
    out.writeUInt32LE(state.attempts, h + 12);
    out.writeDoubleLE(state.createdAt, h + 16);
    out.writeDoubleLE(state.nextAttemptAt, h + 24);
    out.writeDoubleLE(state.deadAt, h + 32);
    out.writeUInt16LE(id.length, h + 40);
    out.writeUInt16LE(0, h + 42);
    id.copy(out, h + STATE_FIXED);
    url?.copy(out, h + STATE_FIXED + id.length);
    history.copy(out, p);
  });
}

/** Encodes a tombstone frame (to be sealed when written). */
export function encodeTombstone(event: EventRef, kind: typeof TOMBSTONE_DELIVERED | typeof TOMBSTONE_PURGED): Buffer {
  return frame(TOMBSTONE_FIXED, 0, (out, h) => {
    out.writeUInt8(RECORD_TOMBSTONE, h);
    out.writeUInt8(kind, h + 1);
    out.writeUInt16LE(0, h + 2);
    out.writeUInt32LE(event.seg, h + 4);
    out.writeUInt32LE(event.off, h + 8);
  });
}

/** Reads a little-endian u32 (recovery's hot path: cheaper than `Buffer#readUInt32LE`'s checks). */
function u32(bytes: Buffer, at: number): number {
  return ((bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16)) + (bytes[at + 3] as number) * 0x1000000;
}

/**
 * Checks the frame at `at` of a segment with this salt: `'ok'` when whole with a matching head checksum
 * (and payload checksum when `payload` is true), `'short'` when the file ends inside it, `'bad'` when
 * whole but damaged.
 */
export function checkFrame(bytes: Buffer, at: number, end: number, payload: boolean, salt: number): 'ok' | 'short' | 'bad' {
  if (end - at < FRAME_BYTES) return 'short';
  const length = u32(bytes, at + 4);
  if (length > end - at - FRAME_BYTES) return 'short';
  const head = u32(bytes, at + 8);
  if (head > length || head < TOMBSTONE_FIXED) return 'bad';
  const type = bytes[at + FRAME_BYTES];
  if (type !== RECORD_EVENT && type !== RECORD_STATE && type !== RECORD_TOMBSTONE) return 'bad';
  const payloadStart = at + FRAME_BYTES + head;
  if (crc32c(bytes, at + 4, payloadStart, salt) !== u32(bytes, at)) return 'bad';
  if (payload && crc32c(bytes, payloadStart, at + FRAME_BYTES + length) !== u32(bytes, at + 12)) return 'bad';
  return 'ok';
}

/**
 * Whether the frame at `at` is authentic but cut off: its head (lengths included) passes its checksum,
 * yet its body runs past `end`. Everything from `at` on is then the torn tail of one record.
 */
export function tornFrame(bytes: Buffer, at: number, end: number, salt: number): boolean {
  if (end - at < FRAME_BYTES) return false;
  const length = u32(bytes, at + 4);
  const head = u32(bytes, at + 8);
  const payloadStart = at + FRAME_BYTES + head;
  if (length <= end - at - FRAME_BYTES || head > length || head < TOMBSTONE_FIXED || payloadStart > end) return false;
  return crc32c(bytes, at + 4, payloadStart, salt) === u32(bytes, at);
}

/** Total length (frame header included) of the frame at `at`. Only meaningful for a checked frame. */
export function frameLength(bytes: Buffer, at: number): number {
  return FRAME_BYTES + u32(bytes, at + 4);
}

/**
 * A reusable view of one decoded record: `decode()` fills the fields of the record's type without
 * allocating, so recovery can walk a million records without creating an object or string per record.
 * Offsets are absolute in the buffer that was decoded.
 */
export class RecordView {
  type = 0;
  /** Event: the id and url bytes, the headers JSON and the body. State: the id bytes, the history JSON. */
  idStart = 0;
  idEnd = 0;
  /** Event: its URL. State: the URL it now goes to when `urlEnd > urlStart`, else none. */
  urlStart = 0;
  urlEnd = 0;
  /** Event: its ordering key when `keyEnd > keyStart`, else none. */
  keyStart = 0;
  keyEnd = 0;
  /** Event: it was enqueued with `supersede: true`. */
  supersede = false;
  headersStart = 0;
  headersEnd = 0;
  bodyStart = 0;
  bodyEnd = 0;
  historyStart = 0;
  historyEnd = 0;
  createdAt = 0;
  nextAttemptAt = 0;
  /** State: dead or pending, why, how many attempts, when it died. */
  dead = false;
  reason: DeadReason = 'invalid';
  attempts = 0;
  deadAt = 0;
  /** Tombstone kind. */
  kind = 0;
  /** State and tombstone: the event record they refer to. */
  eventSeg = 0;
  eventOff = 0;

  /** Decodes the checked frame at `at`; `false` when its fields do not add up (a writer bug, not a torn write). */
  decode(bytes: Buffer, at: number): boolean {
    const h = at + FRAME_BYTES;
    const end = h + u32(bytes, at + 4);
    const payload = h + u32(bytes, at + 8);
    const type = bytes[h] as number;
    this.type = type;
    if (type === RECORD_EVENT) {
      if (payload - h < EVENT_FIXED) return false;
      const flags = bytes[h + 1];
      const idLength = bytes.readUInt16LE(h + 2);
      const urlLength = u32(bytes, h + 4);
      const headersLength = u32(bytes, h + 8);
      const urlEnd = h + EVENT_FIXED + idLength + urlLength;
      const keyed = flags === EVENT_KEY || flags === (EVENT_KEY | EVENT_SUPERSEDE);
      if ((keyed ? urlEnd >= payload : flags !== 0 || urlEnd !== payload) || headersLength > end - payload) return false;
      this.supersede = flags === (EVENT_KEY | EVENT_SUPERSEDE);
      this.idStart = h + EVENT_FIXED;
      this.idEnd = this.idStart + idLength;
      this.urlStart = this.idEnd;
      this.urlEnd = urlEnd;
      this.keyStart = urlEnd;
      this.keyEnd = payload;
      this.headersStart = payload;
      this.headersEnd = payload + headersLength;
      this.bodyStart = this.headersEnd;
      this.bodyEnd = end;
      this.createdAt = bytes.readDoubleLE(h + 12);
      this.nextAttemptAt = bytes.readDoubleLE(h + 20);
      return true;
    }
    if (type === RECORD_STATE) {
      if (payload - h < STATE_FIXED) return false;
      const status = bytes[h + 1];
      const reason = REASONS[bytes[h + 2] as number];
      const flags = bytes[h + 3] as number;
      const idLength = bytes.readUInt16LE(h + 40);
      if ((status !== STATUS_PENDING && status !== STATUS_DEAD) || reason === undefined || (flags & ~STATE_URL) !== 0) return false;
      const idEnd = h + STATE_FIXED + idLength;
      if (flags === STATE_URL ? idEnd >= payload : idEnd !== payload) return false;
      this.dead = status === STATUS_DEAD;
      this.reason = reason;
      this.eventSeg = u32(bytes, h + 4);
      this.eventOff = u32(bytes, h + 8);
      this.attempts = u32(bytes, h + 12);
      this.createdAt = bytes.readDoubleLE(h + 16);
      this.nextAttemptAt = bytes.readDoubleLE(h + 24);
      this.deadAt = bytes.readDoubleLE(h + 32);
      this.idStart = h + STATE_FIXED;
      this.idEnd = idEnd;
      this.urlStart = idEnd;
      this.urlEnd = payload;
      this.historyStart = payload;
      this.historyEnd = end;
      return true;
    }
    if (type === RECORD_TOMBSTONE) {
      const kind = bytes[h + 1];
      if ((kind !== TOMBSTONE_DELIVERED && kind !== TOMBSTONE_PURGED) || payload - h !== TOMBSTONE_FIXED || end !== payload) return false;
      this.kind = kind;
      this.eventSeg = u32(bytes, h + 4);
      this.eventOff = u32(bytes, h + 8);
      return true;
    }
    return false;
  }
}

/** Decodes the headers of a decoded event record. */
export function decodeHeaders(bytes: Buffer, view: RecordView): Record<string, string> {
  return JSON.parse(bytes.toString('utf8', view.headersStart, view.headersEnd)) as Record<string, string>;
}

/** Decodes the history of a decoded state record. */
export function decodeHistory(bytes: Buffer, view: RecordView): AttemptRecord[] {
  return JSON.parse(bytes.toString('utf8', view.historyStart, view.historyEnd)) as AttemptRecord[];
}

/**
 * Where this process's id hashes start: random, so ids cannot be picked in advance to share a hash and
 * turn the index's lookups into long scans. Hashes are never written to disk.
 */
const HASH_SEED = (0x811c9dc5 ^ randomBytes(4).readInt32LE(0)) | 0;

/**
 * A 32-bit hash (FNV-1a from a random start, then a final mix) of `bytes[start, end)`: the key of the
 * index's id hash set and endpoint lookup. Equal bytes give equal hashes within a process; a match is
 * always confirmed by comparing the bytes.
 */
export function hashBytes(bytes: Uint8Array, start: number, end: number): number {
  let h = HASH_SEED;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] as number), 0x01000193);
  return finishHash(h);
}

/** {@link hashBytes} of `text`'s UTF-8 bytes; an ASCII string is hashed without encoding it first. */
export function hashText(text: string): number {
  let h = HASH_SEED;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) {
      const bytes = Buffer.from(text);
      return hashBytes(bytes, 0, bytes.length);
    }
    h = Math.imul(h ^ c, 0x01000193);
  }
  return finishHash(h);
}

function finishHash(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
