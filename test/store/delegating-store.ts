import type { OutboxStore } from '../../src/store/store.js';

/**
 * A store that hands every call to `inner` except those in `overrides` (a fault, a gate, a count), with the
 * optional methods `inner` has and no others.
 */
export function delegatingStore(inner: OutboxStore, overrides: Partial<OutboxStore> = {}): OutboxStore {
  const store: OutboxStore = {
    open: () => inner.open(),
    append: (events, options) => inner.append(events, options),
    claim: (request) => inner.claim(request),
    settle: (outcomes) => inner.settle(outcomes),
    deadLetters: (query) => inner.deadLetters(query),
    replay: (ids, now, url) => inner.replay(ids, now, url),
    purge: (ids) => inner.purge(ids),
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
  if (inner.get !== undefined) store.get = inner.get.bind(inner);
  if (inner.deadLetterIds !== undefined) store.deadLetterIds = inner.deadLetterIds.bind(inner);
  if (inner.moveEndpoint !== undefined) store.moveEndpoint = inner.moveEndpoint.bind(inner);
  return Object.assign(store, overrides);
}
