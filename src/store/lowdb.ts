import { Low } from 'lowdb';
import { JSONFile } from 'lowdb/node';
import { stat } from 'node:fs/promises';
import { InvalidOptionError, OutboxClosedError, StoreIoError, WebhookOutboxError } from '../errors.js';
import { MemoryStore } from './memory.js';
import { assertPositiveInteger } from './validate.js';
import type { MemoryStoreSnapshot } from './memory.js';
import type {
  ClaimRequest,
  ClaimResult,
  DeadLetter,
  DeadLetterQuery,
  NewEvent,
  Outcome,
  OutboxStore,
  StoreStats,
  StoredEvent,
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
  return { ...event, body: new Uint8Array(Buffer.from(event.body, 'base64')) };
}

/**
 * An `OutboxStore` in one human-readable JSON file, written with lowdb. Every write rewrites the
 * whole file (write to a temporary file, then rename) and nothing is fsync'd: appends slow down as the
 * backlog grows and a power loss can lose or empty the file. Changes made while a write is in progress
 * share the next write. For small outboxes you want to read with a text editor; `FileStore` is the
 * default. One process per file (there is no lock).
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
  /** Counts failed writes: a queued write made on a state that was since rolled back must not report success. */
  #rollbacks = 0;
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
    } catch (error) {
      throw new StoreIoError(`Cannot read the lowdb outbox ${this.#file}`, { cause: error });
    }
    this.#written = this.#db.data;
    this.#memory = this.#fromDocument(this.#written);
    this.#bytesOnDisk = await fileSize(this.#file);
  }

  /** Appends, then rewrites the file. */
  async append(events: readonly NewEvent[]): Promise<void> {
    await this.#mutate((memory) => memory.append(events));
  }

  /** Claims from memory; claims are not written. */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    return this.#store().claim(request);
  }

  /** Applies outcomes, then rewrites the file. */
  async settle(outcomes: readonly Outcome[]): Promise<void> {
    await this.#mutate((memory) => memory.settle(outcomes));
  }

  /** Dead letters, oldest first. */
  async deadLetters(query?: DeadLetterQuery): Promise<DeadLetter[]> {
    return this.#store().deadLetters(query);
  }

  /** Replays dead letters, then rewrites the file. */
  async replay(ids?: readonly string[], now?: number): Promise<number> {
    return this.#mutate((memory) => memory.replay(ids, now));
  }

  /** Purges dead letters, then rewrites the file. */
  async purge(ids?: readonly string[]): Promise<number> {
    return this.#mutate((memory) => memory.purge(ids));
  }

  /** Counters. */
  stats(): StoreStats {
    const stats = (this.#memory ?? new MemoryStore()).stats();
    return { ...stats, bytesOnDisk: this.#bytesOnDisk };
  }

  /** Waits for the last write; later calls reject with `ERR_OUTBOX_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writing?.catch(() => undefined);
    await this.#memory?.close();
  }

  #store(): MemoryStore {
    if (this.#closed) throw new OutboxClosedError('The store is closed');
    if (this.#memory === undefined) throw new OutboxClosedError('The store is not open');
    return this.#memory;
  }

  /** Changes the memory store at once, then resolves once a write that includes the change is done. */
  async #mutate<T>(change: (memory: MemoryStore) => Promise<T>): Promise<T> {
    const result = await change(this.#store());
    await (this.#queued ?? this.#queueWrite());
    return result;
  }

  /** Queues a write behind the one in progress: it starts when that one ends, with every change made until then. */
  #queueWrite(): Promise<void> {
    const previous = this.#writing;
    const rollbacks = this.#rollbacks;
    const write = (async () => {
      await previous?.catch(() => undefined);
      this.#queued = undefined;
      if (rollbacks !== this.#rollbacks) {
        throw new StoreIoError(`The lowdb outbox ${this.#file} went back to its last written state after a failed write; this change was undone`);
      }
      await this.#write();
    })();
    this.#queued = write;
    this.#writing = write;
    return write;
  }

  async #write(): Promise<void> {
    const state = (this.#memory as MemoryStore).snapshot();
    const document: LowdbDocument = { version: 1, pending: state.pending.map(toJson), dead: state.dead.map(toJson) };
    this.#db.data = document;
    try {
      await this.#db.write();
    } catch (error) {
      // Undo in memory everything that did not reach the file (claims of this process are dropped with it).
      this.#rollbacks++;
      this.#queued = undefined;
      this.#db.data = this.#written;
      this.#memory = this.#fromDocument(this.#written);
      if (error instanceof WebhookOutboxError) throw error;
      throw new StoreIoError(`Cannot write the lowdb outbox ${this.#file}`, { cause: error });
    }
    this.#written = document;
    this.#bytesOnDisk = await fileSize(this.#file);
  }

  #fromDocument(document: LowdbDocument): MemoryStore {
    const snapshot: MemoryStoreSnapshot = { pending: document.pending.map(fromJson), dead: document.dead.map(fromJson) };
    return new MemoryStore({ ...(this.#maxBytes === undefined ? {} : { maxBytes: this.#maxBytes }), snapshot });
  }
}

/** The size of `file` in bytes, 0 when it does not exist. */
async function fileSize(file: string): Promise<number> {
  return stat(file).then((s) => s.size, () => 0);
}
