/**
 * What a producer calls to enqueue one 1 KiB event: `Outbox.enqueue` when the Outbox exists (what users
 * call), otherwise `FileStore.append` of one event, and the row says which.
 */
import { BODY_1K, NOWHERE_URL, newEvent } from './events.mjs';

/**
 * Opens a producer-only outbox (or a bare FileStore) on `dir`. Resolves with `{ label, enqueue(), close() }`,
 * or undefined when neither exists.
 */
export async function openProducer(pkg, { dir, durability }) {
  if (typeof pkg.Outbox === 'function') {
    const outbox = await pkg.Outbox.open({ dir, url: NOWHERE_URL, autoFlush: false, durability });
    return {
      label: 'Outbox.enqueue',
      enqueue: () => outbox.enqueue({ body: BODY_1K }),
      stats: () => outbox.stats(),
      close: () => outbox.close(),
    };
  }
  if (typeof pkg.FileStore === 'function') {
    const store = new pkg.FileStore({ dir, durability });
    await store.open();
    return {
      label: 'FileStore.append (Outbox missing)',
      enqueue: () => store.append([newEvent()]),
      stats: () => store.stats(),
      close: () => store.close(),
    };
  }
  return undefined;
}
