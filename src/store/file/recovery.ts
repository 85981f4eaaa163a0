import type { JournalRecord } from './format.js';
import { checkFrame, decodeRecord, frameLength, HEADER_BYTES } from './format.js';

/** What scanning one segment found. */
export interface ScanResult {
  /** Offset just after the last whole, valid record: where appending may continue. */
  end: number;
  /** Whole records skipped because of a bad checksum, bad framing or undecodable fields. */
  corrupt: number;
}

function resync(bytes: Buffer, from: number, size: number): number | undefined {
  for (let at = from; at + 8 <= size; at++) if (checkFrame(bytes, at, size) === 'ok') return at;
  return undefined;
}

/**
 * Walks the records of a segment image (`bytes[0, size)`, header already checked) and calls `onRecord`
 * for every valid one, in order. Rules (after Vector's disk buffer v2): a record the file ends inside is
 * a torn tail and ends the scan; a whole record with a bad checksum is skipped and counted, and the
 * scan resumes at the next position where a valid frame starts (found by searching byte by byte, since a
 * flipped length cannot be trusted). Never throws on bad data.
 */
export function scanSegment(
  bytes: Buffer,
  size: number,
  onRecord: (record: JournalRecord, offset: number, length: number) => void,
): ScanResult {
  let at = HEADER_BYTES;
  let end = HEADER_BYTES;
  let corrupt = 0;
  while (at < size) {
    const state = checkFrame(bytes, at, size);
    if (state === 'ok') {
      const length = frameLength(bytes, at);
      const record = decodeRecord(bytes, at);
      if (record === undefined) corrupt++;
      else onRecord(record, at, length);
      at += length;
      end = at;
      continue;
    }
    const next = resync(bytes, at + 1, size);
    if (next === undefined) {
      if (state === 'bad') corrupt++;
      break;
    }
    corrupt++;
    at = next;
  }
  return { end, corrupt };
}
