import { Low } from 'lowdb';
import { JSONFile } from 'lowdb/node';
import { stat } from 'node:fs/promises';
import { InvalidOptionError, OutboxClosedError, StoreIoError, WebhookOutboxError } from '../errors.js';
import { MemoryStore } from './memory.js';
import { assertNewEvents, assertPositiveInteger } from './validate.js';
import type { MemoryStoreSnapshot } from './memory.js';
import type {
  ClaimRequest,
  ClaimResult,
  DeadLetter,
  DeadLetterQuery,
  FoundEvent,
  NewEvent,
  OutboxStore,
  Outcome,
  StoredEvent,
  StoreStats,
} from './store.js';

/** Options of {@link LowdbStore}. */
export interface LowdbStoreOptions {
  /** Path of the JSON file (created on the first write). */
  file: string;
  /**
   * Reject appends (`ERR_OUTBOX_FULL`) once pending and dead events would exceed this many bytes.
   * @default undefined (no limit)
   */
  maxBytes?: number;
}

type StoredJson = Omit<StoredEvent, 'body'> & { body: string };
type DeadJson = Omit<DeadLetter, 'body'> & { body: string };

/** The JSON document kept in the file. Bodies are base64. */
interface LowdbDocument {
  version: 1;
  pending: StoredJson[];
  dead: DeadJson[];
}

const OPTION_KEYS = new Set(['file', 'maxBytes']);

function toJson<T extends StoredEvent>(event: T): Omit<T, 'body'> & { body: string } {
  return { ...event, body: Buffer.from(event.body).toString('base64') };
}

function fromJson<T extends StoredJson>(event: T): Omit<T, 'body'> & { body: Uint8Array } {
  if (typeof event?.body !== 'string') throw new Error(`event ${String(event?.id)}: body must be a base64 string`);
  return { ...event, body: new Uint8Array(Buffer.from(event.body, 'base64')) };
}

/**
 * An `OutboxStore` in one human-readable JSON file, written with lowdb. Every write rewrites the
 * whole file (write to a temporary file, then rename) and nothing is fsync'd: appends slow down as the
 * backlog grows and a power loss can lose or empty the file. Changes made while a write is in progress
 * share the next write; events are handed out only once the file holds them, and a failed write undoes
 * what the file does not hold (claims stay). For small outboxes you want to read with a text editor;
 * `FileStore` is the default. One process per file (there is no lock).
 */
export class LowdbStore implements OutboxStore {
  readonly #db: Low<LowdbDocument>;
  readonly #file: string;
  readonly #maxBytes: number | undefined;
  #memory: MemoryStore | undefined;
  /** What the file holds: the state a failed write goes back to. */
  #written: LowdbDocument = { version: 1, pending: [], dead: [] };
  /** The write in progress or queued last. */
  #writing: Promise<void> | undefined;
  /** The write that changes made now will be part of, until it starts. */
  #queued: Promise<void> | undefined;
  /** Counts failed writes: a change made on a state that was since rolled back must not report success. */
  #rollbacks = 0;
  /** Ids of the pending events in the file: only these are handed out (an unwritten append may yet fail). */
  #writtenIds = new Set<string>();
  /** Ids handed out and not settled: after a rollback they are still claimed. */
  readonly #claimed = new Set<string>();
  /** Ids whose outcome is applied but not written yet (a retry may be due before its write is done). */
  readonly #settling = new Map<string, number>();
  /** Ordering keys of claimed events, and how many outcomes of each key are being written. */
  readonly #claimedKeys = new Map<string, string>();
  readonly #settlingKeys = new Map<string, number>();
  /** Deliveries counted by the memory stores that rollbacks replaced, and by the one in the file. */
  #deliveredBefore = 0;
  #deliveredWritten = 0;
  /** Changes not resolved or rejected yet: close() waits for them. */
  readonly #changes = new Set<Promise<unknown>>();
  #bytesOnDisk = 0;
  #closed = false;

  constructor(options: LowdbStoreOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', 'must be an object');
    for (const key of Object.keys(options)) if (!OPTION_KEYS.has(key)) throw new InvalidOptionError(key, 'is not a LowdbStore option');
    if (typeof options.file !== 'string' || options.file.length === 0) throw new InvalidOptionError('file', 'must be a non-empty path');
    this.#file = options.file;
    this.#maxBytes = options.maxBytes;
    // Not JSONFilePreset: it silently switches to an in-memory adapter when NODE_ENV=test.
    this.#db = new Low<LowdbDocument>(new JSONFile<LowdbDocument>(options.file), this.#written);
    assertPositiveInteger('maxBytes', options.maxBytes);
  }

  /** Reads the file (when it exists). */
  async open(): Promise<void> {
    if (this.#closed) throw new OutboxClosedError('The store is closed');
    try {
      await this.#db.read();
      this.#memory = this.#fromDocument(this.#db.data);
    } catch (error) {
      throw new StoreIoError(`Cannot read the lowdb outbox ${this.#file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    this.#written = this.#db.data;
    this.#writtenIds = new Set(this.#written.pending.map((event) => event.id));
    this.#bytesOnDisk = await fileSize(this.#file);
  }

  /** Appends, then rewrites the file. */
  async append(events: readonly NewEvent[]): Promise<void> {
    await this.#mutate((memory) => memory.append(events));
  }

  /**
   * Claims from memory, only events whose state the file holds (not an append, replay or outcome still
   * being written); claims are not written.
   */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const memory = this.#store();
    const claimed = await memory.claim(request);
    if (memory !== this.#memory) {
      // A failed write replaced the memory meanwhile: these leases were on the old one. Try again soon.
      return { events: [], nextDueAt: request.now };
    }
    // Not yet: an event whose append, replay or outcome is still being written, or whose ordering key has
    // an outcome being written (if that write fails, the event before it is pending again and goes first).
    const ready = (event: StoredEvent): boolean =>
      this.#writtenIds.has(event.id) &&
      !this.#settling.has(event.id) &&
      (event.orderingKey === undefined || !this.#settlingKeys.has(event.orderingKey));
    const held = claimed.events.filter((event) => !ready(event));
    const events = held.length === 0 ? claimed.events : claimed.events.filter(ready);
    for (const event of events) {
      this.#claimed.add(event.id);
      if (event.orderingKey !== undefined) this.#claimedKeys.set(event.id, event.orderingKey);
    }
    if (held.length === 0) return claimed;
    // Back to the queue until their write is done (MemoryStore applies a release at once).
    memory.settle(held.map((event) => ({ id: event.id, type: 'release' as const }))).catch(() => undefined);
    const due = Math.min(...held.map((event) => event.nextAttemptAt));
    return { events, nextDueAt: claimed.nextDueAt === undefined ? due : Math.min(claimed.nextDueAt, due) };
  }

  /** Applies outcomes, then rewrites the file. */
  async settle(outcomes: readonly Outcome[]): Promise<void> {
    const ids = outcomes.map((outcome) => outcome.id);
    const keys = ids.flatMap((id) => this.#claimedKeys.get(id) ?? []);
    count(this.#settling, ids, 1);
    count(this.#settlingKeys, keys, 1);
    try {
      await this.#mutate((memory) => {
        for (const id of ids) {
          this.#claimed.delete(id);
          this.#claimedKeys.delete(id);
        }
        return memory.settle(outcomes);
      });
    } finally {
      count(this.#settling, ids, -1);
      count(this.#settlingKeys, keys, -1);
    }
  }

  /** Dead letters, oldest first. */
  async deadLetters(query?: DeadLetterQuery): Promise<DeadLetter[]> {
    return this.#store().deadLetters(query);
  }

  /** The event with this id, pending, claimed or dead. */
  async get(id: string): Promise<FoundEvent | undefined> {
    return this.#store().get(id);
  }

  /** The ids of the dead letters a query selects, oldest first. */
  async deadLetterIds(query: DeadLetterQuery): Promise<string[]> {
    return this.#store().deadLetterIds(query);
  }

  /** Replays dead letters, then rewrites the file. */
  async replay(ids?: readonly string[], now?: number, url?: string): Promise<number> {
    return this.#mutate((memory) => memory.replay(ids, now, url));
  }

  /** Moves an endpoint's pending and dead events to another URL, then rewrites the file. */
  async moveEndpoint(from: string, to: string, now?: number): Promise<number> {
    return this.#mutate((memory) => memory.moveEndpoint(from, to, now));
  }

  /** Purges dead letters, then rewrites the file. */
  async purge(ids?: readonly string[]): Promise<number> {
    return this.#mutate((memory) => memory.purge(ids));
  }

  /** Counters. */
  stats(): StoreStats {
    const stats = (this.#memory ?? new MemoryStore()).stats();
    return { ...stats, delivered: this.#deliveredBefore + stats.delivered, bytesOnDisk: this.#bytesOnDisk };
  }

  /** Waits for the changes made before it and their writes; later calls reject with `ERR_OUTBOX_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    while (this.#changes.size > 0) await Promise.allSettled([...this.#changes]);
    await this.#writing?.catch(() => undefined);
    await this.#memory?.close();
  }

  #store(): MemoryStore {
    if (this.#closed) throw new OutboxClosedError('The store is closed');
    if (this.#memory === undefined) throw new OutboxClosedError('The store is not open');
    return this.#memory;
  }

  /**
   * Changes the memory store at once, then resolves once a write that includes the change is done. A
   * change made on a memory that a failed write rolled back meanwhile is gone with it, and rejects.
   */
  #mutate<T>(change: (memory: MemoryStore) => Promise<T>): Promise<T> {
    const rollbacks = this.#rollbacks;
    const done = (async () => {
      const result = await change(this.#store());
      if (rollbacks !== this.#rollbacks) throw this.#undone();
      await (this.#queued ?? this.#queueWrite());
      return result;
    })();
    this.#changes.add(done);
    const forget = (): void => {
      this.#changes.delete(done);
    };
    done.then(forget, forget);
    return done;
  }

  #undone(): StoreIoError {
    return new StoreIoError(`The lowdb outbox ${this.#file} went back to its last written state after a failed write; this change was undone`);
  }

  /** Queues a write behind the one in progress: it starts when that one ends, with every change made until then. */
  #queueWrite(): Promise<void> {
    const previous = this.#writing;
    const rollbacks = this.#rollbacks;
    const write = (async () => {
      await previous?.catch(() => undefined);
      this.#queued = undefined;
      if (rollbacks !== this.#rollbacks) throw this.#undone();
      await this.#write();
    })();
    this.#queued = write;
    this.#writing = write;
    return write;
  }

  async #write(): Promise<void> {
    const memory = this.#memory as MemoryStore;
    const state = memory.snapshot();
    const delivered = this.#deliveredBefore + memory.stats().delivered;
    const document: LowdbDocument = { version: 1, pending: state.pending.map(toJson), dead: state.dead.map(toJson) };
    this.#db.data = document;
    try {
      await this.#db.write();
    } catch (error) {
      // Undo in memory everything that did not reach the file; what this process holds claimed stays claimed.
      this.#rollbacks++;
      this.#queued = undefined;
      this.#db.data = this.#written;
      this.#memory = this.#restore(this.#written);
      this.#deliveredBefore = this.#deliveredWritten;
      if (error instanceof WebhookOutboxError) throw error;
      throw new StoreIoError(`Cannot write the lowdb outbox ${this.#file}`, { cause: error });
    }
    this.#written = document;
    this.#writtenIds = new Set(document.pending.map((event) => event.id));
    this.#deliveredWritten = delivered;
    this.#bytesOnDisk = await fileSize(this.#file);
  }

  /**
   * A memory store in the state of `document`, with the events this process holds claimed claimed again.
   * Synchronous, so that nothing can be applied to or claimed from the memory it replaces meanwhile:
   * MemoryStore applies a claim or an outcome at once, before its promise settles.
   */
  #restore(document: LowdbDocument): MemoryStore {
    const ids = new Set(document.pending.map((event) => event.id));
    for (const id of this.#claimed) {
      if (ids.has(id)) continue;
      this.#claimed.delete(id);
      this.#claimedKeys.delete(id);
    }
    return this.#fromDocument(document, this.#claimed);
  }

  /** A memory store in the state of `document` (`claimed`: ids to hold claimed); throws when it is not an outbox document. */
  #fromDocument(document: LowdbDocument, claimed?: ReadonlySet<string>): MemoryStore {
    if (document?.version !== 1 || !Array.isArray(document.pending) || !Array.isArray(document.dead)) {
      throw new Error('not an outbox document (expected { version: 1, pending: [...], dead: [...] })');
    }
    const snapshot: MemoryStoreSnapshot = { pending: document.pending.map(fromJson), dead: document.dead.map(fromJson) };
    for (const event of [...snapshot.pending, ...snapshot.dead]) {
      assertNewEvents([event]);
      if (!Number.isSafeInteger(event.attempts) || event.attempts < 0 || !Array.isArray(event.history)) {
        throw new Error(`event ${event.id}: attempts must be a whole number and history an array`);
      }
      if (event.order !== undefined && (!Number.isSafeInteger(event.order) || event.order < 0)) throw new Error(`event ${event.id}: order must be a whole number`);
    }
    return new MemoryStore({ ...(this.#maxBytes === undefined ? {} : { maxBytes: this.#maxBytes }), snapshot, ...(claimed === undefined ? {} : { claimed }) });
  }
}

/** Adds `delta` to the count of each of `keys` in `counts`, forgetting those that reach 0. */
function count(counts: Map<string, number>, keys: readonly string[], delta: number): void {
  for (const key of keys) {
    const left = (counts.get(key) ?? 0) + delta;
    if (left > 0) counts.set(key, left);
    else counts.delete(key);
  }
}

/** The size of `file` in bytes, 0 when it does not exist. */
async function fileSize(file: string): Promise<number> {
  return stat(file).then((s) => s.size, () => 0);
}
