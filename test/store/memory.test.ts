import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/store/memory.js';
import { describeStoreContract } from './contract.js';

describeStoreContract('MemoryStore', {
  durable: false,
  fresh: async (options) => ({ store: new MemoryStore(options) }),
});

describe('MemoryStore options', () => {
  it('rejects a maxBytes that is not a positive integer', () => {
    expect(() => new MemoryStore({ maxBytes: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});
