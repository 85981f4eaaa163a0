import type { AttemptRecord, DeadReason } from '../store.js';
import { crc32c } from './crc32c.js';

/**
 * The on-disk format of a journal segment, version 1 (little-endian throughout).
 *
 * Segment header, 16 bytes: `"WHOX"`, u16 version, u16 flags (0), u32 segment id, u32 CRC-32C of the
 * first 12 bytes.
 *
 * Then frames: u32 body length, u32 CRC-32C of the body, body. The body starts with a u8 record type and
 * a u16 id length; the id bytes follow the type's fixed fields:
 * - event (1):  u32 url length, u32 headers length, u32 body length, f64 createdAt, f64 nextAttemptAt,
 *               id, url, headers (JSON object), body bytes.
 * - state (2):  u8 status (1 pending, 2 dead), u8 dead reason, u32 attempts, f64 createdAt,
 *               f64 nextAttemptAt, f64 deadAt, u32 history length, id, history (JSON array).
 *               The whole retry state of an event: the newest state record of an id wins.
 * - tombstone (3): u8 kind (1 delivered, 2 purged), id. The event is gone.
 */
export const SEGMENT_MAGIC = 0x584f4857;
export const FORMAT_VERSION = 1;
export const HEADER_BYTES = 16;
export const FRAME_BYTES = 8;

export const RECORD_EVENT = 1;
export const RECORD_STATE = 2;
export const RECORD_TOMBSTONE = 3;

const EVENT_FIXED = 31;
const STATE_FIXED = 37;
const TOMBSTONE_FIXED = 4;

export const STATUS_PENDING = 1;
export const STATUS_DEAD = 2;
export const TOMBSTONE_DELIVERED = 1;
export const TOMBSTONE_PURGED = 2;

const REASONS: readonly DeadReason[] = ['http-status', 'max-age', 'max-attempts', 'invalid'];

/** An event record as decoded. */
export interface EventRecord {
  type: typeof RECORD_EVENT;
  id: string;
  url: string;
  createdAt: number;
  nextAttemptAt: number;
  /** Offsets of the headers JSON and the body inside the frame buffer, decoded only when needed. */
  headersStart: number;
  headersEnd: number;
  bodyStart: number;
  bodyEnd: number;
}

/** A state record as decoded (history left undecoded until needed). */
export interface StateRecord {
  type: typeof RECORD_STATE;
  id: string;
  status: typeof STATUS_PENDING | typeof STATUS_DEAD;
  reason: DeadReason;
  attempts: number;
  createdAt: number;
  nextAttemptAt: number;
  deadAt: number;
  historyStart: number;
  historyEnd: number;
}

/** A tombstone as decoded. */
export interface TombstoneRecord {
  type: typeof RECORD_TOMBSTONE;
  id: string;
  kind: typeof TOMBSTONE_DELIVERED | typeof TOMBSTONE_PURGED;
}

export type JournalRecord = EventRecord | StateRecord | TombstoneRecord;

/** The header of segment `id`. */
export function encodeHeader(id: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(SEGMENT_MAGIC, 0);
  header.writeUInt16LE(FORMAT_VERSION, 4);
  header.writeUInt16LE(0, 6);
  header.writeUInt32LE(id, 8);
  header.writeUInt32LE(crc32c(header, 0, 12), 12);
  return header;
}

/** Whether `bytes` start with a valid header for segment `id`. */
export function isValidHeader(bytes: Buffer, id: number): boolean {
  return (
    bytes.length >= HEADER_BYTES &&
    bytes.readUInt32LE(0) === SEGMENT_MAGIC &&
    bytes.readUInt16LE(4) === FORMAT_VERSION &&
    bytes.readUInt32LE(8) === id &&
    bytes.readUInt32LE(12) === crc32c(bytes, 0, 12)
  );
}

function frame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_BYTES + body.length);
  out.writeUInt32LE(body.length, 0);
  out.writeUInt32LE(crc32c(body), 4);
  body.copy(out, FRAME_BYTES);
  return out;
}

/** Encodes an event record frame. */
export function encodeEvent(event: {
  id: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array;
  createdAt: number;
  nextAttemptAt: number;
}): Buffer {
  const id = Buffer.from(event.id);
  const url = Buffer.from(event.url);
  const headers = Buffer.from(JSON.stringify(event.headers));
  const body = Buffer.allocUnsafe(EVENT_FIXED + id.length + url.length + headers.length + event.body.byteLength);
  body.writeUInt8(RECORD_EVENT, 0);
  body.writeUInt16LE(id.length, 1);
  body.writeUInt32LE(url.length, 3);
  body.writeUInt32LE(headers.length, 7);
  body.writeUInt32LE(event.body.byteLength, 11);
  body.writeDoubleLE(event.createdAt, 15);
  body.writeDoubleLE(event.nextAttemptAt, 23);
  let at = EVENT_FIXED;
  at += id.copy(body, at);
  at += url.copy(body, at);
  at += headers.copy(body, at);
  body.set(event.body, at);
  return frame(body);
}

/** Encodes a state record frame. */
export function encodeState(state: {
  id: string;
  dead: DeadReason | undefined;
  attempts: number;
  createdAt: number;
  nextAttemptAt: number;
  deadAt: number;
  history: readonly AttemptRecord[];
}): Buffer {
  const id = Buffer.from(state.id);
  const history = Buffer.from(JSON.stringify(state.history));
  const body = Buffer.allocUnsafe(STATE_FIXED + id.length + history.length);
  body.writeUInt8(RECORD_STATE, 0);
  body.writeUInt16LE(id.length, 1);
  body.writeUInt8(state.dead === undefined ? STATUS_PENDING : STATUS_DEAD, 3);
  body.writeUInt8(state.dead === undefined ? 0 : REASONS.indexOf(state.dead), 4);
  body.writeUInt32LE(state.attempts, 5);
  body.writeDoubleLE(state.createdAt, 9);
  body.writeDoubleLE(state.nextAttemptAt, 17);
  body.writeDoubleLE(state.deadAt, 25);
  body.writeUInt32LE(history.length, 33);
  id.copy(body, STATE_FIXED);
  history.copy(body, STATE_FIXED + id.length);
  return frame(body);
}

/** Encodes a tombstone frame. */
export function encodeTombstone(id: string, kind: typeof TOMBSTONE_DELIVERED | typeof TOMBSTONE_PURGED): Buffer {
  const idBytes = Buffer.from(id);
  const body = Buffer.allocUnsafe(TOMBSTONE_FIXED + idBytes.length);
  body.writeUInt8(RECORD_TOMBSTONE, 0);
  body.writeUInt16LE(idBytes.length, 1);
  body.writeUInt8(kind, 3);
  idBytes.copy(body, TOMBSTONE_FIXED);
  return frame(body);
}

/**
 * Checks the frame at `at`: `'ok'` when whole with a matching checksum, `'short'` when the file ends
 * inside it, `'bad'` when whole but its checksum or type is wrong.
 */
export function checkFrame(bytes: Buffer, at: number, end: number): 'ok' | 'short' | 'bad' {
  if (end - at < FRAME_BYTES) return 'short';
  const length = bytes.readUInt32LE(at);
  if (length > end - at - FRAME_BYTES) return 'short';
  if (length < TOMBSTONE_FIXED) return 'bad';
  const type = bytes[at + FRAME_BYTES];
  if (type !== RECORD_EVENT && type !== RECORD_STATE && type !== RECORD_TOMBSTONE) return 'bad';
  return crc32c(bytes, at + FRAME_BYTES, at + FRAME_BYTES + length) === bytes.readUInt32LE(at + 4) ? 'ok' : 'bad';
}

/** Total length (frame header included) of the frame at `at`. Only meaningful for a checked frame. */
export function frameLength(bytes: Buffer, at: number): number {
  return FRAME_BYTES + bytes.readUInt32LE(at);
}

/**
 * Decodes the body of a checked frame at `at`; `undefined` when its fields do not add up (which a
 * matching checksum makes very unlikely, but a writer bug must not crash recovery).
 */
export function decodeRecord(bytes: Buffer, at: number): JournalRecord | undefined {
  const start = at + FRAME_BYTES;
  const end = start + bytes.readUInt32LE(at);
  const type = bytes[start];
  const idLength = bytes.readUInt16LE(start + 1);
  if (type === RECORD_EVENT) {
    if (end - start < EVENT_FIXED) return undefined;
    const urlLength = bytes.readUInt32LE(start + 3);
    const headersLength = bytes.readUInt32LE(start + 7);
    const bodyLength = bytes.readUInt32LE(start + 11);
    const idStart = start + EVENT_FIXED;
    const urlStart = idStart + idLength;
    const headersStart = urlStart + urlLength;
    const bodyStart = headersStart + headersLength;
    if (bodyStart + bodyLength !== end) return undefined;
    return {
      type,
      id: bytes.toString('utf8', idStart, urlStart),
      url: bytes.toString('utf8', urlStart, headersStart),
      createdAt: bytes.readDoubleLE(start + 15),
      nextAttemptAt: bytes.readDoubleLE(start + 23),
      headersStart,
      headersEnd: bodyStart,
      bodyStart,
      bodyEnd: end,
    };
  }
  if (type === RECORD_STATE) {
    if (end - start < STATE_FIXED) return undefined;
    const status = bytes[start + 3];
    const reason = REASONS[bytes[start + 4] ?? 255];
    const historyLength = bytes.readUInt32LE(start + 33);
    const idStart = start + STATE_FIXED;
    if ((status !== STATUS_PENDING && status !== STATUS_DEAD) || reason === undefined) return undefined;
    if (idStart + idLength + historyLength !== end) return undefined;
    return {
      type,
      id: bytes.toString('utf8', idStart, idStart + idLength),
      status,
      reason,
      attempts: bytes.readUInt32LE(start + 5),
      createdAt: bytes.readDoubleLE(start + 9),
      nextAttemptAt: bytes.readDoubleLE(start + 17),
      deadAt: bytes.readDoubleLE(start + 25),
      historyStart: idStart + idLength,
      historyEnd: end,
    };
  }
  if (type === RECORD_TOMBSTONE) {
    const kind = bytes[start + 3];
    if ((kind !== TOMBSTONE_DELIVERED && kind !== TOMBSTONE_PURGED) || start + TOMBSTONE_FIXED + idLength !== end) return undefined;
    return { type, id: bytes.toString('utf8', start + TOMBSTONE_FIXED, end), kind };
  }
  return undefined;
}

/** Decodes the headers of an event record. */
export function decodeHeaders(bytes: Buffer, record: EventRecord): Record<string, string> {
  return JSON.parse(bytes.toString('utf8', record.headersStart, record.headersEnd)) as Record<string, string>;
}

/** Decodes the history of a state record. */
export function decodeHistory(bytes: Buffer, record: StateRecord): AttemptRecord[] {
  return JSON.parse(bytes.toString('utf8', record.historyStart, record.historyEnd)) as AttemptRecord[];
}
