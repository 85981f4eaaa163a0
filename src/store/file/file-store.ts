import { join, resolve } from 'node:path';
import { InvalidOptionError, OutboxClosedError, OutboxFullError, OutboxLockedError, StoreIoError, WebhookOutboxError } from '../../errors.js';
import type {
  AppendOptions,
  AttemptRecord,
  ClaimRequest,
  ClaimResult,
  DeadLetter,
  DeadLetterQuery,
  EndpointStoreStats,
  FoundEvent,
  NewEvent,
  OutboxStore,
  Outcome,
  StoredEvent,
  StoreStats,
} from '../store.js';
import { assertNewEvents, assertPositiveInteger, deadLetterMatches, withAttempt } from '../validate.js';
import { CLAIMED, DEAD, EventIndex, PENDING } from './event-index.js';
import type { EndpointEntry, Location } from './event-index.js';
import { SparseChunks } from '../chunked-array.js';
import type { FileSystem } from './file-system.js';
import { isCode, nodeFileSystem, readFully, readFullySync, writeFully } from './file-system.js';
import type { EventRef } from './format.js';
import {
  checkFrame,
  decodeHeaders,
  decodeHistory,
  EventRecords,
  encodeHeader,
  encodeState,
  encodeTombstone,
  hashBytes,
  hashText,
  HEADER_BYTES,
  isCutShortHeader,
  newSalt,
  readHeader,
  RECORD_EVENT,
  RECORD_STATE,
  RecordView,
  sealFrame,
  TOMBSTONE_DELIVERED,
  TOMBSTONE_PURGED,
} from './format.js';
import type { DirectoryLock } from './lock.js';
import { LOCK_FILE, acquireLock, lockOwner } from './lock.js';
import { scanSegment } from './recovery.js';

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** The outbox directory (created 0700 when missing). One process owns it at a time. */
  dir: string;
  /**
   * `'fsync'`: `append()`, `replay()` and `purge()` resolve after an fsync that covers their records
   * (survives a power loss); records arriving while an fsync runs share the next one. `settle()` resolves
   * once its outcomes are written (they survive a killed process) and they are fsync'd within
   * `OUTCOME_SYNC_MS`: a lost outcome repeats a delivery, it never loses an event. `'write'`: everything
   * resolves after `write()` (survives a killed process, not a power loss or kernel crash).
   * @default 'fsync'
   */
  durability?: 'fsync' | 'write';
  /**
   * Bound on the journal's size on disk. An `append()` that would pass it is rejected with
   * `ERR_OUTBOX_FULL` and writes nothing. Outcome records (delivered, retry, dead) are always written, so
   * the outbox can drain when full; they may take the journal a little past the bound.
   * @default undefined (no limit besides the disk)
   */
  maxBytes?: number;
  /**
   * What to do when `maxBytes` is reached. Only `'reject'` exists: never a silent drop.
   * @default 'reject'
   */
  fullPolicy?: 'reject';
  /**
   * Target size of one segment file; a new one is started once the current one reaches it. With
   * `maxBytes`, at most a quarter of it.
   * @default 16777216 (16 MiB); with `maxBytes`, an eighth of it when that is less
   */
  segmentBytes?: number;
  /**
   * The file system seam (tests inject faults through it).
   * @default node:fs
   */
  fs?: FileSystem;
}

/** What {@link FileStore.inspect} reports about a directory, without taking its lock. */
export interface FileStoreInspection {
  /** Counters as `stats()` would report them (`delivered` counts nothing: it is per open). */
  stats: StoreStats;
  /** Dead letters, oldest first. */
  deadLetters: DeadLetter[];
  /** The event `find` named, when the directory holds it. */
  found?: FoundEvent | undefined;
  /** The pid of the live process that holds the directory's lock, if any. */
  ownerPid: number | undefined;
  /** That process's host, when it is not this one (another container or machine sharing the directory). */
  ownerHost: string | undefined;
}

/** Target size of a segment without `maxBytes`, and the largest default with it. */
const SEGMENT_BYTES = 16 * 1024 * 1024;

/**
 * The segment size to roll at. With `maxBytes`, by default an eighth of it: the segment being written is
 * deleted only once a newer one is started, which happens only when it reaches this size, so a segment
 * near the bound would keep even a drained outbox full for good.
 */
function segmentTarget(segmentBytes: number | undefined, maxBytes: number | undefined): number {
  if (segmentBytes !== undefined) return segmentBytes;
  return maxBytes === undefined ? SEGMENT_BYTES : Math.min(SEGMENT_BYTES, Math.max(1, Math.floor(maxBytes / 8)));
}

/** Most bytes read in one call when claimed events lie next to each other in a segment. */
const CLAIM_READ_BYTES = 1024 * 1024;
/** Largest gap between two claimed event records that are still read in one call. */
const CLAIM_READ_GAP = 16 * 1024;
/** Largest group-commit buffer kept for reuse; a bigger commit gets a buffer of its own. */
const MAX_KEPT_COMMIT_BUFFER = 4 * 1024 * 1024;
const OPTION_KEYS = new Set(['dir', 'durability', 'maxBytes', 'fullPolicy', 'segmentBytes', 'fs']);
const SEGMENT_NAME = /^segment-(\d{10})\.log$/;
const SEGMENT_ASIDE = /^segment-(\d{10})\.log\.corrupt$/;

/** Whether a file of this name belongs to a FileStore directory (a journal segment, one set aside, the lock). */
export function isOutboxFile(name: string): boolean {
  return SEGMENT_NAME.test(name) || SEGMENT_ASIDE.test(name) || name === LOCK_FILE;
}

function segmentName(id: number): string {
  return `segment-${String(id).padStart(10, '0')}.log`;
}

interface Segment {
  id: number;
  path: string;
  fd: number;
  size: number;
  /** The seed of its head checksums; 0 for a format version 2 segment. */
  salt: number;
  /** Started by this process (so recently written and in the page cache), not found at open. */
  written: boolean;
  /** Pending or dead events whose event record is here. */
  live: number;
  /** Live events whose newest state record is here. */
  stateRefs: number;
  /** Tombstones here for events of other, still existing segments: segment id -> count. */
  tombsFor: Map<number, number>;
  /** Segments holding tombstones for events of this one. */
  tombedBy: Set<number>;
}

/** How much of the newest journal this process wrote is read synchronously (see `#readAt`). */
const HOT_READ_BYTES = 64 * 1024 * 1024;
/** Events moved per write by `moveEndpoint()` (each is read back first: this bounds the memory it takes). */
const MOVE_BATCH = 1024;

/** Longest an outcome record waits for an fsync with durability 'fsync' (see `#syncSoon`). */
export const OUTCOME_SYNC_MS = 100;

interface WriteOp {
  /** The op's frames, or event records encoded at commit time. */
  frames: Buffer[] | EventRecords;
  /** The length of each frame, in order: one location is reported per entry. */
  lengths: number[];
  /** Total bytes. */
  size: number;
  apply(locations: Location[]): void;
  fail?(): void;
  /** Whether the op resolves only after an fsync covers it (with durability 'fsync'); outcomes do not. */
  durable: boolean;
  resolve(): void;
  reject(error: unknown): void;
}

class CorruptRecordError extends Error {}

/** One event of an `append()` batch on its way through the duplicate check. */
interface Incoming {
  event: NewEvent;
  hash: number;
  /** Live events with the same id hash, by record position: whether their id turned out to be this one. */
  verdicts: Map<number, boolean> | undefined;
}

function ioError(action: string, error: unknown): WebhookOutboxError {
  if (error instanceof WebhookOutboxError) return error;
  if (isCode(error, 'ENOSPC') || isCode(error, 'EDQUOT')) return new OutboxFullError(`No space left on the device while ${action}`, { cause: error });
  const code = typeof error === 'object' && error !== null && 'code' in error ? ` (${String((error as { code: unknown }).code)})` : '';
  return new StoreIoError(`File store I/O failed while ${action}${code}`, { cause: error });
}

/** Checks and decodes one record read from a segment with this salt; `payload`: check its payload checksum too. */
function decodeRecord(bytes: Buffer, payload: boolean, salt: number): [Buffer, RecordView] {
  if (checkFrame(bytes, 0, bytes.length, payload, salt) !== 'ok') throw new CorruptRecordError('bad checksum');
  const view = new RecordView();
  if (!view.decode(bytes, 0)) throw new CorruptRecordError('undecodable record');
  return [bytes, view];
}

/**
 * The default `OutboxStore`: a segmented, append-only, checksummed journal in one directory.
 * See docs/05-durability.md for the format, the guarantees and what is not guaranteed.
 */
export class FileStore implements OutboxStore {
  readonly #dir: string;
  readonly #fs: FileSystem;
  readonly #fsync: boolean;
  readonly #maxBytes: number | undefined;
  readonly #segmentBytes: number;
  #index = new EventIndex();
  #segments = new Map<number, Segment>();
  #active: Segment | undefined;
  #lock: DirectoryLock | undefined;
  #state: 'new' | 'opening' | 'open' | 'closed' = 'new';
  #failed: WebhookOutboxError | undefined;
  #queue: WriteOp[] = [];
  #queuedBytes = 0;
  #commitBuffer = Buffer.alloc(0);
  #writer: Promise<void> | undefined;
  /** Records were written since the last fsync of the active segment. */
  #dirty = false;
  /** The deferred fsync of outcome records (durability 'fsync'), while one is scheduled. */
  #syncTimer: NodeJS.Timeout | undefined;
  /** The writer's start after this event-loop turn, while one is scheduled (see `#startWriter`). */
  #writeSoon: NodeJS.Immediate | undefined;
  #busy = new Set<number>();
  #claimedHistory = new Map<number, AttemptRecord[]>();
  /**
   * 1 for slots sent to another URL than their event record's (a replay to a URL, a moved endpoint): each
   * of their state records carries it. Sparse: only ranges with such a slot take memory (1 byte a slot).
   */
  #moved = new SparseChunks(Uint8Array);
  #candidates = new Set<number>();
  /** Ids whose append is being written: a second append of one waits for that write. */
  #appending = new Map<string, Promise<void>>();
  /** Highest segment id ever seen in the directory (including ones moved aside): ids are never reused. */
  #maxSegmentId = 0;
  #delivered = 0;
  #corrupt = 0;
  #closing: Promise<void> | undefined;
  /** The counters at close: the index itself is let go then, so a closed store holds no memory for its backlog. */
  #closedStats: StoreStats | undefined;

  constructor(options: FileStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
    for (const key of Object.keys(options)) if (!OPTION_KEYS.has(key)) throw new InvalidOptionError(key, 'is not a FileStore option');
    if (typeof options.dir !== 'string' || options.dir.length === 0) throw new InvalidOptionError('dir', 'must be a non-empty path');
    if (options.durability !== undefined && options.durability !== 'fsync' && options.durability !== 'write') {
      throw new InvalidOptionError('durability', `must be 'fsync' or 'write', got ${String(options.durability)}`);
    }
    if (options.fullPolicy !== undefined && options.fullPolicy !== 'reject') {
      throw new InvalidOptionError('fullPolicy', `must be 'reject', got ${String(options.fullPolicy)}`);
    }
    assertPositiveInteger('maxBytes', options.maxBytes);
    assertPositiveInteger('segmentBytes', options.segmentBytes);
    if (options.segmentBytes !== undefined && (options.segmentBytes < 4096 || options.segmentBytes > 2 ** 30)) {
      throw new InvalidOptionError('segmentBytes', 'must be between 4096 and 1073741824');
    }
    if (options.segmentBytes !== undefined && options.maxBytes !== undefined && options.segmentBytes * 4 > options.maxBytes) {
      throw new InvalidOptionError(
        'segmentBytes',
        `must be at most a quarter of maxBytes (${options.maxBytes}), got ${options.segmentBytes}: the segment being written is deleted only after the next one is started, so one as large as the bound could keep a drained outbox full`,
      );
    }
    this.#dir = resolve(options.dir);
    this.#fs = options.fs ?? nodeFileSystem;
    this.#fsync = (options.durability ?? 'fsync') === 'fsync';
    this.#maxBytes = options.maxBytes;
    this.#segmentBytes = segmentTarget(options.segmentBytes, options.maxBytes);
  }

  /**
   * Reads a directory that another process may own, without taking its lock or changing anything:
   * counters and dead letters (those `options.deadLetters` selects, all by default; only those are read
   * from disk) as a recovery scan sees them right now (for `webhook-outbox status` and `dead list`).
   */
  static async inspect(dir: string, options: { fs?: FileSystem; deadLetters?: DeadLetterQuery; find?: string } = {}): Promise<FileStoreInspection> {
    const store = new FileStore({ dir, ...(options.fs === undefined ? {} : { fs: options.fs }) });
    store.#state = 'opening';
    try {
      await store.#recover(true);
      store.#state = 'open';
      const deadLetters = await store.deadLetters(options.deadLetters);
      const found = options.find === undefined ? undefined : await store.get(options.find);
      const owner = await lockOwner(store.#fs, store.#dir);
      return { stats: store.stats(), deadLetters, found, ownerPid: owner?.pid, ownerHost: owner?.host };
    } catch (error) {
      throw ioError(`inspecting ${store.#dir}`, error);
    } finally {
      store.#state = 'closed';
      await store.#closeFiles();
    }
  }

  /** Creates the directory, takes the lock, recovers the journal and builds the index. */
  async open(): Promise<void> {
    if (this.#state !== 'new') throw new OutboxClosedError(this.#state === 'closed' ? 'The store is closed' : 'The store is already open');
    this.#state = 'opening';
    try {
      await this.#fs.mkdir(this.#dir, 0o700);
      this.#lock = await acquireLock(this.#fs, this.#dir, {
        // Another process took the lock over (this one was silent past the lease): it owns the journal now.
        onLost: (owner) => {
          this.#failed ??= new OutboxLockedError(this.#dir, owner?.pid, owner?.host);
        },
      });
      await this.#recover(false);
      this.#state = 'open';
    } catch (error) {
      this.#state = 'closed';
      await this.#closeFiles().catch(() => undefined);
      await this.#lock?.release().catch(() => undefined);
      throw ioError(`opening ${this.#dir}`, error);
    }
  }

  /**
   * Durably appends a batch (see the port's contract); ids already pending or dead are skipped. Finding
   * those costs O(1) per event: a lookup in the index's id hash set, confirmed by reading the other
   * record's id from disk on the rare hash match. An id another `append()` is writing right now waits
   * for that write (and fails with it).
   */
  async append(events: readonly NewEvent[], options?: AppendOptions): Promise<void> {
    this.#assertUsable();
    assertNewEvents(events);
    // Ids the caller vouches for (see `AppendOptions.newIds`) skip the duplicate check and its bookkeeping:
    // about 1.3 us of an enqueue's 6.5 us of CPU (docs/12).
    if (options?.newIds === true && events.length > 0) {
      return this.#appendNew(
        events.map((event) => ({ event, hash: hashText(event.id), verdicts: undefined })),
        false,
      );
    }
    const batch = new Map<string, Incoming>();
    for (const event of events) {
      if (batch.has(event.id)) continue;
      batch.set(event.id, { event, hash: hashText(event.id), verdicts: undefined });
    }
    for (;;) {
      const waits: Promise<void>[] = [];
      const accepted: Incoming[] = [];
      const unknown: { incoming: Incoming; slot: number; key: number }[] = [];
      for (const incoming of batch.values()) {
        const writing = this.#appending.get(incoming.event.id);
        if (writing !== undefined) {
          waits.push(writing);
          continue;
        }
        let live = false;
        for (const slot of this.#index.slotsWithHash(incoming.hash)) {
          const name = this.#index.nameOf(slot);
          const key = this.#index.evSeg.get(slot) * 2 ** 32 + this.#index.evOff.get(slot);
          const verdict = name === undefined ? incoming.verdicts?.get(key) : name === incoming.event.id;
          if (verdict === undefined) unknown.push({ incoming, slot, key });
          else live ||= verdict;
        }
        if (!live) accepted.push(incoming);
      }
      if (unknown.length > 0) {
        await Promise.all(
          unknown.map(async ({ incoming, slot, key }) => (incoming.verdicts ??= new Map()).set(key, await this.#hasId(slot, Buffer.from(incoming.event.id)))),
        );
        this.#assertUsable();
        continue;
      }
      if (accepted.length > 0) waits.push(this.#appendNew(accepted));
      await Promise.all(waits);
      return;
    }
  }

  /**
   * Writes events known to be new; unless `register` is false (ids nobody else can know yet), registers
   * them as being written until the write settles.
   */
  #appendNew(accepted: Incoming[], register = true): Promise<void> {
    const records = new EventRecords(accepted.map(({ event }) => event));
    const bytes = records.size;
    if (this.#maxBytes !== undefined && this.#diskBytes() + this.#queuedBytes + bytes > this.#maxBytes) {
      throw new OutboxFullError(`The outbox is full (${this.#diskBytes() + this.#queuedBytes} of ${this.#maxBytes} bytes)`);
    }
    const written = this.#write(
      records,
      (locations) =>
        accepted.forEach(({ event, hash }, i) => {
          const slot = this.#addEvent(hash, this.#index.endpointOf(event.url), event.createdAt, event.nextAttemptAt, locations[i] as Location);
          if (event.orderingKey !== undefined) this.#index.setKey(slot, event.orderingKey, event.supersede === true ? event.id : undefined);
          this.#index.schedule(slot);
        }),
      undefined,
      bytes,
    );
    if (!register) return written;
    for (const { event } of accepted) this.#appending.set(event.id, written);
    const forget = (): void => {
      for (const { event } of accepted) if (this.#appending.get(event.id) === written) this.#appending.delete(event.id);
    };
    written.then(forget, forget);
    return written;
  }

  /** Whether the live event in `slot` has this id (read from its record; a damaged record has none). */
  async #hasId(slot: number, id: Buffer): Promise<boolean> {
    const index = this.#index;
    try {
      const [bytes, view] = await this.#readRecord(index.evSeg.get(slot), index.evOff.get(slot), index.evLen.get(slot), false);
      return view.type === RECORD_EVENT && view.idEnd - view.idStart === id.length && bytes.compare(id, 0, id.length, view.idStart, view.idEnd) === 0;
    } catch (error) {
      if (error instanceof CorruptRecordError) return false;
      throw ioError('checking for a duplicate id', error);
    }
  }

  /** Leases due events, oldest due first; reads their payloads from disk. */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    this.#assertUsable();
    const exclude = request.excludeEndpoints;
    const only = request.endpoint;
    const { slots, nextDueAt, superseded } = this.#index.claim(Math.max(0, Math.floor(request.limit)), request.now, (url) =>
      (only === undefined || url === only) && exclude?.has(url) !== true,
    );
    const read: (StoredEvent | undefined)[] = [];
    const failures: unknown[] = [];
    const drops: Promise<void>[] = [];
    const records = await this.#readEventRecords(slots);
    await Promise.all(
      slots.map(async (slot, i) => {
        try {
          const { event } = await this.#read(slot, records.get(slot));
          this.#claimedHistory.set(slot, event.history);
          this.#index.setName(slot, event.id);
          const by = superseded?.get(slot);
          if (by !== undefined) event.supersededBy = by;
          read[i] = event;
        } catch (error) {
          if (error instanceof CorruptRecordError) drops.push(this.#dropCorrupt(slot));
          else {
            this.#index.schedule(slot);
            failures.push(error);
          }
        }
      }),
    );
    const events = read.filter((event): event is StoredEvent => event !== undefined);
    if (failures.length > 0) {
      for (const event of events) this.#release(this.#index.names.get(event.id) as number);
      throw ioError('reading claimed events', failures[0]);
    }
    if (drops.length === 0) return { events, nextDueAt };
    // A dropped event may have held up the next of its ordering key, which is due now: say so.
    await Promise.all(drops);
    return { events, nextDueAt: Math.min(nextDueAt ?? request.now, request.now) };
  }

  /** Durably records outcomes of claimed events; outcomes for ids that are not claimed are ignored. */
  async settle(outcomes: readonly Outcome[]): Promise<void> {
    this.#assertUsable();
    const frames: Buffer[] = [];
    const applies: ((location: Location) => void)[] = [];
    const taken: number[] = [];
    for (const outcome of outcomes) {
      const slot = this.#index.names.get(outcome.id);
      if (slot === undefined || this.#index.status.get(slot) !== CLAIMED || this.#busy.has(slot)) continue;
      if (outcome.type === 'release') {
        this.#release(slot);
        continue;
      }
      this.#busy.add(slot);
      taken.push(slot);
      const history = this.#claimedHistory.get(slot) ?? [];
      const attempts = this.#index.attempts.get(slot);
      const createdAt = this.#index.createdAt(slot);
      const event = this.#ref(slot);
      if (outcome.type === 'delivered' || outcome.type === 'superseded') {
        // A superseded event is gone like a delivered one (recovery does not read a tombstone's kind).
        const delivered = outcome.type === 'delivered';
        frames.push(encodeTombstone(event, TOMBSTONE_DELIVERED));
        applies.push((location) => {
          this.#removeEvent(slot, location.seg);
          if (delivered) this.#delivered++;
        });
      } else if (outcome.type === 'retry') {
        const state = {
          attempts: attempts + (outcome.countsAsAttempt ? 1 : 0),
          createdAt,
          nextAttemptAt: outcome.nextAttemptAt,
        };
        frames.push(encodeState({ id: outcome.id, event, dead: undefined, deadAt: 0, history: withAttempt(history, outcome.attempt), url: this.#stateUrl(slot), ...state }));
        applies.push((location) => {
          this.#setState(slot, location, { status: PENDING, deadAt: 0, ...state });
          this.#index.clearName(slot);
          this.#index.schedule(slot);
        });
      } else {
        const state = {
          attempts: attempts + (outcome.attempt === undefined ? 0 : 1),
          createdAt,
          nextAttemptAt: this.#index.next.get(slot),
          deadAt: outcome.at,
        };
        frames.push(encodeState({ id: outcome.id, event, dead: outcome.reason, history: withAttempt(history, outcome.attempt), url: this.#stateUrl(slot), ...state }));
        applies.push((location) => this.#setState(slot, location, { status: DEAD, ...state }));
      }
    }
    if (frames.length === 0) return;
    await this.#write(
      frames,
      (locations) => {
        applies.forEach((apply, i) => apply(locations[i] as Location));
        for (const slot of taken) {
          this.#busy.delete(slot);
          this.#claimedHistory.delete(slot);
        }
      },
      () => {
        for (const slot of taken) {
          this.#busy.delete(slot);
          this.#release(slot);
        }
      },
      0,
      false,
    );
  }

  /** The ids of the dead letters a query selects, oldest first, without reading them. */
  async deadLetterIds(query: DeadLetterQuery): Promise<string[]> {
    this.#assertUsable();
    const ids: string[] = [];
    for (const slot of this.#selectDead(query)) {
      if (query.limit !== undefined && ids.length >= query.limit) break;
      ids.push(this.#idOf(slot));
    }
    return ids;
  }

  /** The dead slots a query's filters select (ids, endpoint, time of death), oldest first; `limit` is the caller's. */
  *#selectDead(query: DeadLetterQuery): Generator<number> {
    const wanted = query.ids === undefined ? undefined : new Set(query.ids);
    for (const slot of this.#index.deadSlots()) {
      if ((wanted === undefined || wanted.has(this.#idOf(slot))) && deadLetterMatches(query, this.#urlOf(slot), this.#index.next.get(slot))) yield slot;
    }
  }

  /**
   * The event with this id, read from disk, pending, claimed or dead. A record that fails its checksum
   * reads as not held (the next claim or listing drops it).
   */
  async get(id: string): Promise<FoundEvent | undefined> {
    this.#assertUsable();
    // Reading takes turns of the event loop, during which the event may settle and its slot (or segment)
    // go to another event: read again until nothing changed under the read.
    for (let tries = 0; ; tries++) {
      const slot = await this.#slotOf(id);
      if (slot === undefined) return undefined;
      const before = this.#whereabouts(slot);
      let read: { event: StoredEvent; state: RecordView | undefined } | undefined;
      let failure: unknown;
      try {
        read = await this.#read(slot);
      } catch (error) {
        failure = error;
      }
      if (this.#whereabouts(slot) !== before && tries < 10) continue;
      if (read === undefined) {
        if (failure instanceof CorruptRecordError) return undefined;
        throw ioError('reading an event', failure);
      }
      // A copy: the bytes read may share a pooled buffer with other records.
      const event: StoredEvent = { ...read.event, body: new Uint8Array(read.event.body) };
      const status = this.#index.status.get(slot);
      if (status === DEAD) return { ...event, state: 'dead', reason: read.state?.reason ?? 'invalid', deadAt: this.#index.next.get(slot) };
      return { ...event, state: status === CLAIMED ? 'claimed' : 'pending' };
    }
  }

  /** What a slot holds and where its records are, as one string: equal before and after a read, nothing moved. */
  #whereabouts(slot: number): string {
    const index = this.#index;
    return `${index.status.get(slot)} ${index.evSeg.get(slot)}:${index.evOff.get(slot)} ${index.stSeg.get(slot)}:${index.stOff.get(slot)} ${index.endpoint.get(slot)} ${index.next.get(slot)}`;
  }

  /** Dead letters, oldest first, read from disk. */
  async deadLetters(query: DeadLetterQuery = {}): Promise<DeadLetter[]> {
    this.#assertUsable();
    const letters: DeadLetter[] = [];
    for (const slot of this.#selectDead(query)) {
      if (query.limit !== undefined && letters.length >= query.limit) break;
      const id = this.#idOf(slot);
      try {
        const { event, state } = await this.#read(slot);
        letters.push({ ...event, reason: state?.reason ?? 'invalid', deadAt: this.#index.next.get(slot) });
      } catch (error) {
        if (!(error instanceof CorruptRecordError)) throw ioError('reading dead letters', error);
        await this.#dropCorruptDead(slot, id);
      }
    }
    return letters;
  }

  /**
   * Makes dead letters pending again, due at `now`, with attempts and the age basis reset; to `url` when
   * given (the URL is checked by the caller).
   */
  async replay(ids?: readonly string[], now: number = Date.now(), url?: string): Promise<number> {
    this.#assertUsable();
    const slots = this.#deadSlots(ids);
    const frames: Buffer[] = [];
    const chosen: { slot: number; id: string }[] = [];
    try {
      for (const slot of slots) {
        const id = this.#idOf(slot);
        let history: AttemptRecord[];
        try {
          history = (await this.#read(slot)).event.history;
        } catch (error) {
          if (!(error instanceof CorruptRecordError)) throw ioError('reading dead letters', error);
          await this.#dropCorruptDead(slot, id);
          continue;
        }
        if (this.#index.status.get(slot) !== DEAD || this.#busy.has(slot) || this.#index.names.get(id) !== slot) continue;
        this.#busy.add(slot);
        chosen.push({ slot, id });
        const to = url ?? this.#stateUrl(slot);
        frames.push(encodeState({ id, event: this.#ref(slot), dead: undefined, attempts: 0, createdAt: now, nextAttemptAt: now, deadAt: 0, history, url: to }));
      }
    } catch (error) {
      // Nothing was written: the dead letters taken so far are free again for the next replay or purge.
      for (const { slot } of chosen) this.#busy.delete(slot);
      throw error;
    }
    if (frames.length === 0) return 0;
    await this.#write(
      frames,
      (locations) =>
        chosen.forEach(({ slot }, i) => {
          this.#busy.delete(slot);
          if (url !== undefined) this.#moveTo(slot, url);
          this.#setState(slot, locations[i] as Location, { status: PENDING, attempts: 0, createdAt: now, nextAttemptAt: now, deadAt: 0 });
          this.#index.clearName(slot);
          this.#index.schedule(slot);
        }),
      () => chosen.forEach(({ slot }) => this.#busy.delete(slot)),
    );
    return chosen.length;
  }

  /**
   * Sends every pending (not claimed) and dead event of endpoint `from` to `to` from now on: pending ones
   * due at once with attempts reset, dead ones stay dead. Each gets a state record carrying `to`. Events
   * claimed, or whose outcome is being written, stay where they are (the caller holds the endpoint).
   */
  async moveEndpoint(from: string, to: string, now: number = Date.now()): Promise<number> {
    this.#assertUsable();
    const index = this.#index.findEndpoint(from);
    if (from === to || index === undefined) return 0;
    // All taken at once, out of the endpoint's heap (no claim can take them) and busy (no replay, purge or
    // other move touches them) until their batch is written or they are given back.
    const taken = this.#index.slotsOf(index).filter((slot) => {
      const status = this.#index.status.get(slot);
      return (status === PENDING || status === DEAD) && !this.#busy.has(slot);
    });
    this.#index.unschedule(index, new Set(taken));
    for (const slot of taken) this.#busy.add(slot);
    let moved = 0;
    try {
      for (let i = 0; i < taken.length; i += MOVE_BATCH) moved += await this.#moveBatch(taken.slice(i, i + MOVE_BATCH), to, now);
    } finally {
      // After a failure: what is not moved goes back where it was.
      for (const slot of taken) if (this.#busy.has(slot)) this.#giveBack(slot);
    }
    return moved;
  }

  /** Ends a move's hold on a slot it did not move: not busy, and back in its endpoint's heap if pending. */
  #giveBack(slot: number): void {
    this.#busy.delete(slot);
    if (this.#index.status.get(slot) === PENDING) this.#index.putBack(slot);
  }

  /** Moves slots taken by {@link moveEndpoint}: reads each, writes its state record carrying `to`. */
  async #moveBatch(slots: readonly number[], to: string, now: number): Promise<number> {
    this.#assertUsable();
    const chosen: { slot: number; state: { status: typeof PENDING | typeof DEAD; attempts: number; createdAt: number; nextAttemptAt: number; deadAt: number } }[] = [];
    const frames: Buffer[] = [];
    // Event records in one read per run of neighbours, as a claim reads them.
    const records = await this.#readEventRecords(slots);
    for (const slot of slots) {
      let read: { event: StoredEvent; state: RecordView | undefined };
      try {
        read = await this.#read(slot, records.get(slot));
      } catch (error) {
        this.#assertUsable(); // closed meanwhile: say so, not what reading a dropped index made of it
        if (!(error instanceof CorruptRecordError)) throw ioError('reading events to move', error);
        // Left where it is: it is dropped (and counted) when it is claimed or listed, as anywhere else.
        this.#giveBack(slot);
        continue;
      }
      const dead = this.#index.status.get(slot) === DEAD;
      const state = dead
        ? { status: DEAD, attempts: this.#index.attempts.get(slot), createdAt: this.#index.createdAt(slot), nextAttemptAt: read.state?.nextAttemptAt ?? 0, deadAt: this.#index.next.get(slot) }
        : { status: PENDING, attempts: 0, createdAt: this.#index.createdAt(slot), nextAttemptAt: Math.min(this.#index.next.get(slot), now), deadAt: 0 };
      chosen.push({ slot, state: state as (typeof chosen)[number]['state'] });
      const reason = dead ? (read.state?.reason ?? 'invalid') : undefined;
      frames.push(encodeState({ id: read.event.id, event: this.#ref(slot), dead: reason, history: read.event.history, url: to, ...state }));
    }
    if (frames.length === 0) return 0;
    this.#assertUsable();
    await this.#write(frames, (locations) =>
      chosen.forEach(({ slot, state }, i) => {
        this.#busy.delete(slot);
        this.#setState(slot, locations[i] as Location, state);
        this.#moveTo(slot, to);
        if (state.status === PENDING) this.#index.putBack(slot);
      }),
    );
    return chosen.length;
  }

  /** Deletes dead letters for good. */
  async purge(ids?: readonly string[]): Promise<number> {
    this.#assertUsable();
    const chosen = this.#deadSlots(ids)
      .filter((slot) => !this.#busy.has(slot))
      .map((slot) => ({ slot, event: this.#ref(slot) }));
    if (chosen.length === 0) return 0;
    for (const { slot } of chosen) this.#busy.add(slot);
    await this.#write(
      chosen.map(({ event }) => encodeTombstone(event, TOMBSTONE_PURGED)),
      (locations) =>
        chosen.forEach(({ slot }, i) => {
          this.#busy.delete(slot);
          this.#removeEvent(slot, (locations[i] as Location).seg);
        }),
      () => chosen.forEach(({ slot }) => this.#busy.delete(slot)),
    );
    return chosen.length;
  }

  /** Counters, kept in memory. */
  stats(): StoreStats {
    const closed = this.#closedStats;
    if (closed !== undefined) return { ...closed, endpoints: Object.fromEntries(Object.entries(closed.endpoints).map(([url, counts]) => [url, { ...counts }])) };
    const endpoints: Record<string, EndpointStoreStats> = {};
    for (const entry of this.#index.endpoints) {
      if (entry.pending > 0 || entry.dead > 0) endpoints[entry.url] = { pending: entry.pending, dead: entry.dead };
    }
    return {
      pending: this.#index.pending,
      claimed: this.#index.claimed,
      delivered: this.#delivered,
      dead: this.#index.dead,
      corrupt: this.#corrupt,
      oldestPendingAt: this.#index.oldestPendingAt(),
      bytesOnDisk: this.#diskBytes(),
      endpoints,
    };
  }

  /** Waits for queued writes, makes them durable, closes files and releases the lock. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const wasOpen = this.#state === 'open';
    this.#state = 'closed';
    if (!wasOpen) return;
    try {
      clearTimeout(this.#syncTimer);
      if (this.#writeSoon !== undefined) this.#startWriter(true);
      await this.#writer;
      if (this.#dirty && this.#failed === undefined && this.#active !== undefined) await this.#fs.fsync(this.#active.fd);
    } finally {
      this.#closedStats = this.stats();
      this.#index = new EventIndex();
      this.#claimedHistory.clear();
      this.#moved = new SparseChunks(Uint8Array);
      this.#candidates.clear();
      await this.#closeFiles();
      await this.#lock?.release();
    }
  }

  async #closeFiles(): Promise<void> {
    const segments = [...this.#segments.values()];
    this.#segments.clear();
    for (const segment of segments) await this.#fs.close(segment.fd).catch(() => undefined);
  }

  #assertUsable(): void {
    if (this.#state !== 'open') throw new OutboxClosedError(this.#state === 'closed' ? 'The store is closed' : 'The store is not open');
    if (this.#failed !== undefined) throw this.#failed;
  }

  #diskBytes(): number {
    let bytes = 0;
    for (const segment of this.#segments.values()) bytes += segment.size;
    return bytes;
  }

  /** The id of a claimed or dead slot. */
  #idOf(slot: number): string {
    return this.#index.nameOf(slot) as string;
  }

  /** Where a slot's event record is: how its state records and tombstone refer to it. */
  #ref(slot: number): EventRef {
    return { seg: this.#index.evSeg.get(slot), off: this.#index.evOff.get(slot) };
  }

  /** The URL a slot goes to (its endpoint's). */
  #urlOf(slot: number): string {
    return (this.#index.endpoints[this.#index.endpoint.get(slot)] as EndpointEntry).url;
  }

  /** What a new state record of `slot` must carry as its URL: the one it was moved to, if any. */
  #stateUrl(slot: number): string | undefined {
    return this.#moved.get(slot) === 1 ? this.#urlOf(slot) : undefined;
  }

  /** The live slot of `id`, if any: claimed and dead ones by name, pending ones by id hash and the id on disk. */
  async #slotOf(id: string): Promise<number | undefined> {
    const named = this.#index.names.get(id);
    if (named !== undefined) return named;
    const bytes = Buffer.from(id);
    for (const slot of this.#index.slotsWithHash(hashText(id))) {
      const name = this.#index.nameOf(slot);
      if (name === undefined ? await this.#hasId(slot, bytes) : name === id) return slot;
    }
    return undefined;
  }

  #deadSlots(ids: readonly string[] | undefined): number[] {
    if (ids === undefined) return this.#index.deadSlots();
    const slots: number[] = [];
    for (const id of new Set(ids)) {
      const slot = this.#index.names.get(id);
      if (slot !== undefined && this.#index.status.get(slot) === DEAD) slots.push(slot);
    }
    return slots;
  }

  #release(slot: number): void {
    this.#claimedHistory.delete(slot);
    if (this.#index.status.get(slot) !== CLAIMED) return;
    this.#index.clearName(slot);
    this.#index.schedule(slot);
  }

  /** Counts a corrupt event and drops it with a tombstone; resolves once that is written (or failed: then it is kept). */
  #dropCorrupt(slot: number): Promise<void> {
    this.#corrupt++;
    this.#busy.add(slot);
    return this.#write(
      [encodeTombstone(this.#ref(slot), TOMBSTONE_PURGED)],
      (locations) => {
        this.#busy.delete(slot);
        this.#removeEvent(slot, (locations[0] as Location).seg);
      },
      () => {
        this.#busy.delete(slot);
        this.#release(slot);
      },
      0,
      false,
    ).catch(() => undefined);
  }

  /** A dead letter whose payload failed its checksum: dropped like a corrupt claimed event, unless it changed meanwhile. */
  async #dropCorruptDead(slot: number, id: string): Promise<void> {
    if (this.#index.status.get(slot) !== DEAD || this.#busy.has(slot) || this.#index.names.get(id) !== slot) return;
    // `inspect()` writes nothing: it only counts.
    if (this.#active === undefined) this.#corrupt++;
    else await this.#dropCorrupt(slot);
  }

  /**
   * The event records of `slots`, read with one call per run of records lying close together in one
   * segment (events claimed together were mostly appended together): one read call costs more than a few
   * KiB of extra bytes. A run that cannot be read is left out; `#read` then reads those records one by
   * one and reports their errors.
   */
  async #readEventRecords(slots: readonly number[]): Promise<Map<number, Buffer>> {
    const index = this.#index;
    const seg = (slot: number): number => index.evSeg.get(slot);
    const off = (slot: number): number => index.evOff.get(slot);
    const end = (slot: number): number => off(slot) + index.evLen.get(slot);
    const runs: number[][] = [];
    for (const slot of [...slots].sort((a, b) => seg(a) - seg(b) || off(a) - off(b))) {
      const run = runs.at(-1);
      const first = run?.[0];
      const last = run?.at(-1);
      if (run === undefined || first === undefined || last === undefined || seg(slot) !== seg(first) || off(slot) - end(last) > CLAIM_READ_GAP || end(slot) - off(first) > CLAIM_READ_BYTES) {
        runs.push([slot]);
      } else {
        run.push(slot);
      }
    }
    const records = new Map<number, Buffer>();
    await Promise.all(
      runs.map(async (run) => {
        const first = run[0] as number;
        const segment = this.#segments.get(seg(first));
        if (run.length < 2 || segment === undefined) return;
        const start = off(first);
        const bytes = Buffer.allocUnsafe(end(run.at(-1) as number) - start);
        const read = await this.#readAt(segment, bytes, start).catch(() => 0);
        if (read !== bytes.length) return;
        for (const slot of run) records.set(slot, bytes.subarray(off(slot) - start, end(slot) - start));
      }),
    );
    return records;
  }

  /**
   * Reads an event's records (the event record may come already read) and assembles it;
   * `CorruptRecordError` when a checksum fails.
   */
  async #read(slot: number, eventRecord?: Buffer): Promise<{ event: StoredEvent; state: RecordView | undefined }> {
    const index = this.#index;
    const seg = index.evSeg.get(slot);
    const off = index.evOff.get(slot);
    const [eventBytes, record] =
      eventRecord === undefined ? await this.#readRecord(seg, off, index.evLen.get(slot), true) : decodeRecord(eventRecord, true, this.#segment(seg).salt);
    if (record.type !== RECORD_EVENT) throw new CorruptRecordError('not an event record');
    let state: RecordView | undefined;
    let history: AttemptRecord[] = [];
    if (index.stSeg.get(slot) !== 0) {
      const where = [index.stSeg.get(slot), index.stOff.get(slot), index.stLen.get(slot)] as const;
      let stateBytes: Buffer;
      let stateRecord: RecordView;
      let historyIntact = true;
      try {
        [stateBytes, stateRecord] = await this.#readRecord(...where, true);
      } catch (error) {
        if (!(error instanceof CorruptRecordError)) throw error;
        // Its payload is only the attempt history: with a head that checks out (attempts, due time, dead
        // reason) the event goes on without it rather than being lost.
        [stateBytes, stateRecord] = await this.#readRecord(...where, false);
        historyIntact = false;
      }
      if (stateRecord.type !== RECORD_STATE || stateRecord.eventSeg !== seg || stateRecord.eventOff !== off) throw new CorruptRecordError('not its state record');
      state = stateRecord;
      if (historyIntact) history = decodeHistory(stateBytes, stateRecord);
    }
    const event: StoredEvent = {
      id: eventBytes.toString('utf8', record.idStart, record.idEnd),
      url: this.#urlOf(slot),
      headers: decodeHeaders(eventBytes, record),
      // A view of the bytes read, not a copy (the buffer behind it may hold other records, as a pooled Buffer does).
      body: new Uint8Array(eventBytes.buffer, eventBytes.byteOffset + record.bodyStart, record.bodyEnd - record.bodyStart),
      createdAt: index.createdAt(slot),
      nextAttemptAt: index.status.get(slot) === DEAD ? (state?.nextAttemptAt ?? record.nextAttemptAt) : index.next.get(slot),
      attempts: index.attempts.get(slot),
      history,
    };
    const orderingKey = index.keyOf(slot);
    if (orderingKey !== undefined) event.orderingKey = orderingKey;
    if (index.supersedes(slot)) event.supersede = true;
    return { state, event };
  }

  /** Reads one record; `payload`: check its payload checksum too. */
  async #readRecord(seg: number, off: number, len: number, payload: boolean): Promise<[Buffer, RecordView]> {
    const segment = this.#segment(seg);
    const bytes = Buffer.allocUnsafe(len);
    const read = await this.#readAt(segment, bytes, off);
    if (read !== len) throw new CorruptRecordError('bad checksum');
    return decodeRecord(bytes, payload, segment.salt);
  }

  /** The segment a live record is in. */
  #segment(seg: number): Segment {
    const segment = this.#segments.get(seg);
    if (segment === undefined) throw new CorruptRecordError(`segment ${seg} is gone`);
    return segment;
  }

  /**
   * Fills `bytes` from `position` of a segment. The newest `HOT_READ_BYTES` of segments this process wrote
   * are read synchronously: their pages are in the page cache, and a read handed to the thread pool costs
   * about 60 us of CPU here (docs/12). Older segments, and those found at open, may be cold on disk, and a
   * disk read must not block the event loop.
   */
  async #readAt(segment: Segment, bytes: Buffer, position: number): Promise<number> {
    const hot = segment.written && ((this.#active?.id ?? 0) - segment.id) * this.#segmentBytes < HOT_READ_BYTES;
    if (hot) return readFullySync(this.#fs, segment.fd, bytes, bytes.length, position);
    return readFully(this.#fs, segment.fd, bytes, bytes.length, position);
  }

  /** Index bookkeeping shared by recovery and live writes. */
  #addEvent(hash: number, endpoint: number, createdAt: number, nextAttemptAt: number, location: Location): number {
    const slot = this.#index.add(hash, endpoint, createdAt, nextAttemptAt);
    this.#index.evSeg.set(slot, location.seg);
    this.#index.evOff.set(slot, location.off);
    this.#index.evLen.set(slot, location.len);
    (this.#segments.get(location.seg) as Segment).live++;
    return slot;
  }

  #setState(
    slot: number,
    location: Location,
    state: { status: typeof PENDING | typeof DEAD; attempts: number; createdAt: number; nextAttemptAt: number; deadAt: number },
  ): void {
    const index = this.#index;
    this.#unrefState(slot);
    index.stSeg.set(slot, location.seg);
    index.stOff.set(slot, location.off);
    index.stLen.set(slot, location.len);
    (this.#segments.get(location.seg) as Segment).stateRefs++;
    if (state.status === DEAD) {
      if (index.status.get(slot) !== DEAD) index.markDead(slot, state.deadAt);
      index.setNext(slot, state.deadAt);
    } else if (index.status.get(slot) === DEAD) {
      index.revive(slot, state.createdAt, state.nextAttemptAt);
    } else {
      index.setTimes(slot, state.createdAt, state.nextAttemptAt);
    }
    index.attempts.set(slot, state.attempts);
  }

  #unrefState(slot: number): void {
    const seg = this.#index.stSeg.get(slot);
    if (seg === 0) return;
    const segment = this.#segments.get(seg);
    if (segment !== undefined && --segment.stateRefs === 0) this.#candidates.add(seg);
  }

  /** Points a slot (in no heap) at `url` for good: its state records carry the URL from now on. */
  #moveTo(slot: number, url: string): void {
    this.#index.moveTo(slot, this.#index.endpointOf(url));
    this.#moved.set(slot, 1);
  }

  #removeEvent(slot: number, tombSeg: number): void {
    const evSeg = this.#index.evSeg.get(slot);
    this.#moved.set(slot, 0);
    this.#unrefState(slot);
    this.#index.remove(slot);
    const eventSegment = this.#segments.get(evSeg);
    if (eventSegment === undefined) return;
    if (--eventSegment.live === 0) this.#candidates.add(evSeg);
    if (evSeg !== tombSeg) {
      const tombSegment = this.#segments.get(tombSeg) as Segment;
      tombSegment.tombsFor.set(evSeg, (tombSegment.tombsFor.get(evSeg) ?? 0) + 1);
      eventSegment.tombedBy.add(tombSeg);
    }
  }

  /** Applies one recovered record to the index; `false` when its fields do not add up. */
  #onRecovered(segment: Segment, bytes: Buffer, view: RecordView, location: Location): boolean {
    if (!view.decode(bytes, location.off)) return false;
    const index = this.#index;
    if (view.type === RECORD_EVENT) {
      const endpoint = index.endpointOfBytes(bytes, view.urlStart, view.urlEnd);
      const slot = this.#addEvent(hashBytes(bytes, view.idStart, view.idEnd), endpoint, view.createdAt, view.nextAttemptAt, location);
      if (view.keyEnd > view.keyStart) {
        index.setKey(slot, bytes.toString('utf8', view.keyStart, view.keyEnd), view.supersede ? bytes.toString('utf8', view.idStart, view.idEnd) : undefined);
      }
      return true;
    }
    const slot = index.recoveredSlot(view.eventSeg, view.eventOff);
    if (slot === undefined) return true;
    if (view.type === RECORD_STATE) {
      if (view.urlEnd > view.urlStart) this.#moveTo(slot, bytes.toString('utf8', view.urlStart, view.urlEnd));
      this.#setState(slot, location, { ...view, status: view.dead ? DEAD : PENDING });
      if (view.dead) index.setName(slot, bytes.toString('utf8', view.idStart, view.idEnd));
      else index.clearName(slot);
    } else {
      this.#removeEvent(slot, segment.id);
    }
    return true;
  }

  async #recover(readOnly: boolean): Promise<void> {
    const names = await this.#fs.readdir(this.#dir);
    const found: { name: string; id: number }[] = [];
    for (const name of names) {
      const match = SEGMENT_NAME.exec(name) ?? SEGMENT_ASIDE.exec(name);
      if (match === null) continue;
      this.#maxSegmentId = Math.max(this.#maxSegmentId, Number(match[1]));
      if (!name.endsWith('.corrupt')) found.push({ name, id: Number(match[1]) });
    }
    found.sort((a, b) => a.id - b.id);
    // Every segment is opened and sized first, so that reading the next one (one read call on the thread
    // pool) overlaps with parsing the current one. Two buffers are reused across segments.
    const opened = await Promise.allSettled(
      found.map(async ({ name, id }) => {
        const fd = await this.#fs.open(join(this.#dir, name), readOnly ? 'r' : 'r+');
        try {
          return { name, id, fd, size: await this.#fs.size(fd) };
        } catch (error) {
          await this.#fs.close(fd).catch(() => undefined);
          throw error;
        }
      }),
    );
    const files = opened.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failed = opened.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed !== undefined) {
      for (const { fd } of files) await this.#fs.close(fd).catch(() => undefined);
      throw failed.reason;
    }
    const largest = files.reduce((max, file) => Math.max(max, file.size), 0);
    const buffers = files.length > 1 ? [Buffer.allocUnsafe(largest), Buffer.allocUnsafe(largest)] : [Buffer.allocUnsafe(largest)];
    const load = async (i: number): Promise<{ fd: number; read: number; bytes: Buffer }> => {
      const { fd, size } = files[i] as { fd: number; size: number };
      const bytes = buffers[i % buffers.length] as Buffer;
      return { fd, bytes, read: await readFully(this.#fs, fd, bytes, size, 0) };
    };
    const view = new RecordView();
    const location: Location = { seg: 0, off: 0, len: 0 };
    let next = files.length > 0 ? load(0) : undefined;
    let closeFrom = 0;
    try {
      for (const [i, { name, id }] of files.entries()) {
        const path = join(this.#dir, name);
        const last = i === files.length - 1;
        const { fd, bytes, read } = await (next as Promise<{ fd: number; read: number; bytes: Buffer }>);
        closeFrom = i + 1;
        next = last ? undefined : load(i + 1);
        let keep = false;
        try {
          const header = readHeader(bytes.subarray(0, read), id);
          if (header === undefined) {
            // Creation cut short (it never held a record): the newest file, or one whose bytes start a header.
            const cutShort = read < HEADER_BYTES && (last || isCutShortHeader(bytes.subarray(0, read), id));
            if (readOnly) {
              if (!cutShort) this.#corrupt++;
              continue;
            }
            if (cutShort) {
              // A segment whose creation was cut short: it never held a record.
              await this.#fs.unlink(path);
            } else {
              await this.#fs.rename(path, `${path}.corrupt`);
              this.#corrupt++;
            }
            await this.#fs.fsyncDir(this.#dir);
            continue;
          }
          const segment: Segment = { id, path, fd, size: read, salt: header.salt, written: false, live: 0, stateRefs: 0, tombsFor: new Map(), tombedBy: new Set() };
          this.#segments.set(id, segment);
          keep = true;
          this.#index.beginSegment(id);
          location.seg = id;
          // Payload checksums are checked here only in the newest segment, where a torn write can be.
          const result = scanSegment(bytes, read, last, header, (offset, length) => {
            location.off = offset;
            location.len = length;
            return this.#onRecovered(segment, bytes, view, location);
          });
          this.#corrupt += result.corrupt;
          if (result.end < read && last && !readOnly) {
            await this.#fs.truncate(fd, result.end);
            await this.#fs.fsync(fd);
            segment.size = result.end;
          }
        } finally {
          if (!keep) await this.#fs.close(fd);
        }
      }
    } finally {
      await next?.catch(() => undefined);
      for (const { fd } of files.slice(closeFrom)) await this.#fs.close(fd).catch(() => undefined);
    }
    this.#index.finishRecovery();
    if (readOnly) return;
    const newest = [...this.#segments.values()].at(-1);
    // A version 2 segment is not continued: records this version writes are salted (see `#commit`).
    if (newest !== undefined && newest.size < this.#segmentBytes && newest.salt !== 0) this.#active = newest;
    else if (!(await this.#roll())) {
      // No room for a new segment (a full disk): go on in the newest one; segmentBytes is only a target.
      if (newest === undefined) throw new StoreIoError(`Cannot create the first segment in ${this.#dir}`);
      this.#active = newest;
    }
    for (const id of this.#segments.keys()) this.#candidates.add(id);
    try {
      await this.#collect();
    } catch {
      // A settled segment that cannot be deleted yet holds nothing live: the next commit tries again.
      for (const id of this.#segments.keys()) this.#candidates.add(id);
    }
  }

  /**
   * Starts a new segment. Resolves false, with nothing changed and the half-made file removed, when the
   * new file cannot be created (a full disk); rejects when syncing the segment being left fails.
   */
  async #roll(): Promise<boolean> {
    // Records not synced yet stay in the segment being left: sync them now, nothing else would.
    if (this.#dirty && this.#active !== undefined) {
      await this.#fs.fsync(this.#active.fd);
      this.#dirty = false;
    }
    const id = Math.max(this.#active?.id ?? 0, [...this.#segments.keys()].at(-1) ?? 0, this.#maxSegmentId) + 1;
    this.#maxSegmentId = id;
    const path = join(this.#dir, segmentName(id));
    let fd: number;
    try {
      fd = await this.#fs.open(path, 'wx+', 0o600);
    } catch {
      return false;
    }
    const salt = newSalt();
    const segment: Segment = { id, path, fd, size: 0, salt, written: true, live: 0, stateRefs: 0, tombsFor: new Map(), tombedBy: new Set() };
    try {
      writeFully(this.#fs, fd, encodeHeader(id, salt), 0);
      await this.#fs.fsync(fd);
      await this.#fs.fsyncDir(this.#dir);
    } catch {
      await this.#fs.close(fd).catch(() => undefined);
      await this.#fs.unlink(path).catch(() => undefined);
      return false;
    }
    segment.size = HEADER_BYTES;
    const previous = this.#active;
    this.#segments.set(id, segment);
    this.#active = segment;
    if (previous !== undefined) this.#candidates.add(previous.id);
    return true;
  }

  /** Deletes segments nothing refers to any more; runs in the writer, after the records that freed them. */
  async #collect(): Promise<void> {
    const doomed: Segment[] = [];
    // Tombstone references dropped on the way, to put back for segments that end up not deleted.
    const dropped: { holder: Segment; id: number; count: number }[] = [];
    const visit = (id: number): void => {
      const segment = this.#segments.get(id);
      if (segment === undefined || segment === this.#active || doomed.includes(segment)) return;
      if (segment.live > 0 || segment.stateRefs > 0 || segment.tombsFor.size > 0) return;
      // A segment's tombstone holders are visited after it, so they come later in `doomed`.
      doomed.push(segment);
      for (const holder of segment.tombedBy) {
        const other = this.#segments.get(holder);
        if (other === undefined) continue;
        dropped.push({ holder: other, id, count: other.tombsFor.get(id) ?? 0 });
        other.tombsFor.delete(id);
        visit(holder);
      }
    };
    for (const id of this.#candidates) visit(id);
    this.#candidates.clear();
    if (doomed.length === 0) return;
    const keepFrom = (i: number): void => {
      const kept = new Set(doomed.slice(i).map((segment) => segment.id));
      for (const { holder, id, count } of dropped) if (kept.has(id)) holder.tombsFor.set(id, count);
      for (const id of kept) this.#candidates.add(id);
    };
    // The records that freed these segments may not be synced yet ('write' mode, outcomes): sync them first.
    if (this.#dirty && this.#active !== undefined) {
      try {
        await this.#fs.fsync(this.#active.fd);
        this.#dirty = false;
      } catch {
        // Those records may be gone although the pages now count as clean: delete nothing, and stop
        // trusting this file as after any failed fsync (a new segment). At worst an outcome repeats.
        keepFrom(0);
        await this.#recoverFromFailure(this.#active.size, true);
        return;
      }
    }
    for (let i = 0; i < doomed.length; i++) {
      const segment = doomed[i] as Segment;
      try {
        await this.#fs.unlink(segment.path);
      } catch (error) {
        // The file stays: it, and every segment after it (among them the holders of its tombstones),
        // stay tracked as they were, so nothing it holds can come back after a reopen.
        keepFrom(i);
        throw error;
      }
      this.#segments.delete(segment.id);
      await this.#fs.close(segment.fd).catch(() => undefined);
    }
    await this.#fs.fsyncDir(this.#dir);
  }

  /**
   * Queues frames for the next group commit; resolves once they are written and applied, and, when
   * `durable` and the durability is 'fsync', once an fsync covers them.
   */
  #write(
    frames: Buffer[] | EventRecords,
    apply: (locations: Location[]) => void,
    fail?: () => void,
    appendBytes = 0,
    durable = true,
  ): Promise<void> {
    return new Promise<void>((resolvePromise, reject) => {
      if (this.#failed !== undefined) {
        fail?.();
        reject(this.#failed);
        return;
      }
      this.#queuedBytes += appendBytes;
      const lengths = frames instanceof EventRecords ? frames.lengths : frames.map((frame) => frame.length);
      this.#queue.push({
        frames,
        lengths,
        size: frames instanceof EventRecords ? frames.size : lengths.reduce((sum, length) => sum + length, 0),
        apply,
        ...(fail === undefined ? {} : { fail }),
        durable,
        resolve: () => {
          this.#queuedBytes -= appendBytes;
          resolvePromise();
        },
        reject: (error) => {
          this.#queuedBytes -= appendBytes;
          reject(error);
        },
      });
      this.#startWriter(durable);
    });
  }

  /**
   * The frames of one group commit in one buffer. The buffer is reused by the next commit (one commit is
   * written at a time): a fresh buffer of a few hundred KiB per commit costs more in page faults than
   * encoding its records.
   */
  #encodeCommit(batch: WriteOp[], size: number, salt: number): Buffer {
    let out = this.#commitBuffer;
    if (size > out.length) {
      out = Buffer.allocUnsafe(Math.max(size, Math.min(2 * out.length, MAX_KEPT_COMMIT_BUFFER)));
      if (out.length <= MAX_KEPT_COMMIT_BUFFER) this.#commitBuffer = out;
    }
    let at = 0;
    for (const op of batch) {
      if (op.frames instanceof EventRecords) op.frames.encodeInto(out, at, salt);
      else {
        let from = at;
        for (const frame of op.frames) {
          frame.copy(out, from);
          sealFrame(out, from, salt);
          from += frame.length;
        }
      }
      at += op.size;
    }
    return out.subarray(0, size);
  }

  /**
   * With durability 'fsync', outcome records do not wait for an fsync of their own: they survive a killed
   * process once written, the next group commit's fsync covers them, and at the latest this one does,
   * `OUTCOME_SYNC_MS` later. A power loss can therefore repeat the deliveries of that window (never lose
   * an event). It runs as an empty durable commit, so a failure takes the same path as any fsync failure.
   */
  #syncSoon(): void {
    if (this.#syncTimer !== undefined) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      if (!this.#dirty || this.#state !== 'open' || this.#failed !== undefined) return;
      this.#write([], () => undefined).catch(() => undefined);
    }, OUTCOME_SYNC_MS);
    this.#syncTimer.unref();
  }

  /**
   * Starts the writer unless it runs (it takes queued ops when its commit is done). For a durable op on the
   * next microtask, so that calls made in the same tick share the first commit. Ops that wait for no fsync
   * (outcomes) start it after this event-loop turn instead: the answers read in one turn then share one
   * write, and each write of a file costs a journal update of its inode here (about 20 us, docs/12).
   */
  #startWriter(now: boolean): void {
    if (this.#writer !== undefined) return;
    if (now) {
      clearImmediate(this.#writeSoon);
      this.#writeSoon = undefined;
      this.#writer = Promise.resolve().then(() => this.#runWriter());
      return;
    }
    this.#writeSoon ??= setImmediate(() => {
      this.#writeSoon = undefined;
      this.#writer ??= this.#runWriter();
    });
  }

  async #runWriter(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0);
        if (this.#failed !== undefined) {
          for (const op of batch) {
            op.fail?.();
            op.reject(this.#failed);
          }
          continue;
        }
        await this.#commit(batch);
      }
    } finally {
      this.#writer = undefined;
    }
  }

  async #commit(batch: WriteOp[]): Promise<void> {
    let phase: 'roll' | 'write' | 'fsync' = 'roll';
    let start = 0;
    try {
      // A segment that cannot be started (a full disk) is tried again at the next commit; this one goes on
      // in the current segment, where a write that finds no room fails like any other. A format 2 segment
      // (no salt; kept at open only when no new one could be made) is left as soon as possible.
      const current = this.#active as Segment;
      start = current.size;
      if (current.size >= this.#segmentBytes || current.salt === 0) {
        // Records not synced yet stay in the segment being left: sync them now. If that fails, it is the
        // fsync failure below: this batch is rejected, nothing cut, and the store goes on in a new segment.
        if (this.#dirty) {
          phase = 'fsync';
          await this.#fs.fsync(current.fd);
          this.#dirty = false;
          phase = 'roll';
        }
        await this.#roll();
      }
      const active = this.#active as Segment;
      start = active.size;
      let at = start;
      const locations = batch.map((op) =>
        op.lengths.map((len) => {
          const location = { seg: active.id, off: at, len };
          at += len;
          return location;
        }),
      );
      phase = 'write';
      writeFully(this.#fs, active.fd, this.#encodeCommit(batch, at - start, active.salt), start);
      if (this.#fsync && batch.some((op) => op.durable)) {
        phase = 'fsync';
        await this.#fs.fsync(active.fd);
        this.#dirty = false;
      } else {
        this.#dirty = true;
        if (this.#fsync) this.#syncSoon();
      }
      active.size = at;
      batch.forEach((op, i) => op.apply(locations[i] as Location[]));
    } catch (error) {
      const failure = ioError(phase === 'fsync' ? 'syncing the journal' : phase === 'write' ? 'writing the journal' : 'starting a new segment', error);
      for (const op of batch) {
        op.fail?.();
        op.reject(failure);
      }
      if (phase !== 'roll') await this.#recoverFromFailure(start, phase === 'fsync');
      else this.#failed = new StoreIoError('The file store failed: cannot start a new segment', { cause: error });
      return;
    }
    try {
      await this.#collect();
    } catch {
      // Deleting a fully settled segment can wait for the next commit or the next open.
      for (const id of this.#segments.keys()) this.#candidates.add(id);
    }
    for (const op of batch) op.resolve();
  }

  /**
   * After a failed write or fsync: cut the segment back to its last durable byte so the rejected
   * records cannot come back, and after a failed fsync stop trusting that file's pages altogether by
   * starting a new segment. If that fails too, the store goes into a failed state: every call rejects.
   */
  async #recoverFromFailure(durableSize: number, afterFsync: boolean): Promise<void> {
    const active = this.#active as Segment;
    try {
      await this.#fs.truncate(active.fd, durableSize);
      await this.#fs.fsync(active.fd);
      this.#dirty = false;
      active.size = durableSize;
      if (afterFsync && !(await this.#roll())) throw new Error('cannot start a new segment');
    } catch (error) {
      this.#failed = new StoreIoError('The file store failed: the journal could not be restored after an I/O error; reopen it', { cause: error });
    }
  }
}
