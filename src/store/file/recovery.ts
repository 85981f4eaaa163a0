import type { SegmentHeader } from './format.js';
import { checkFrame, FRAME_BYTES, frameLength, tornFrame } from './format.js';

/** What scanning one segment found. */
export interface ScanResult {
  /** Offset just after the last whole, valid record: where appending may continue. */
  end: number;
  /** Whole records skipped because of a bad checksum or bad framing. */
  corrupt: number;
}

function zeros(bytes: Buffer, from: number, size: number): boolean {
  for (let at = from; at < size; at++) if (bytes[at] !== 0) return false;
  return true;
}

function resync(bytes: Buffer, from: number, size: number, payload: boolean, salt: number): number | undefined {
  for (let at = from; at + FRAME_BYTES <= size; at++) if (checkFrame(bytes, at, size, payload, salt) === 'ok') return at;
  return undefined;
}

/**
 * Walks the frames of a segment image (`bytes[0, size)`, its header already read) and calls `onRecord`
 * for every valid one, in order, with its offset and length; `onRecord` returns `false` for a frame
 * whose fields do not add up, which is counted like a bad checksum. `newest`: the segment being written
 * when the process stopped, where a torn write can be: payload checksums are checked too (elsewhere they
 * are checked when read back). Rules (after Vector's disk buffer v2): in the newest segment, a frame the
 * file ends inside, or a zero-filled tail (space a crash left unwritten), is a torn tail: it ends the scan
 * uncounted (without looking inside a torn frame's body when its head checks out); in an older segment,
 * which was complete and synced when the next one started, the same is damage and counts as one record.
 * A whole frame with a bad checksum is skipped and counted, and the scan resumes at the next
 * position where a valid frame starts (found by searching byte by byte, since a flipped length cannot be
 * trusted; the segment's salt keeps frames a record's body carries from passing). Never throws on bad data.
 */
export function scanSegment(
  bytes: Buffer,
  size: number,
  newest: boolean,
  header: SegmentHeader,
  onRecord: (offset: number, length: number) => boolean,
): ScanResult {
  let at = header.length;
  let end = header.length;
  let corrupt = 0;
  while (at < size) {
    const state = checkFrame(bytes, at, size, newest, header.salt);
    if (state === 'ok') {
      const length = frameLength(bytes, at);
      if (!onRecord(at, length)) corrupt++;
      at += length;
      end = at;
      continue;
    }
    // A torn record whose head checks out: the rest of the file is its body, and frame-shaped bytes in a
    // body (a webhook may carry anything) must not be read as records.
    if ((state === 'short' && tornFrame(bytes, at, size, header.salt)) || (newest && zeros(bytes, at, size))) {
      if (!newest) corrupt++;
      break;
    }
    const next = resync(bytes, at + 1, size, newest, header.salt);
    if (next === undefined) {
      if (state === 'bad' || !newest) corrupt++;
      break;
    }
    corrupt++;
    at = next;
  }
  return { end, corrupt };
}
