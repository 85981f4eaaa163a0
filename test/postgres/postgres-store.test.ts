import { PostgresStore } from '../../src/store/postgres.js';
import { describeStoreContract } from '../store/contract.js';
import { freshTable, testPool } from './pool.js';

const pool = testPool();

describeStoreContract('PostgresStore', {
  durable: true,
  maxBytes: false,
  fresh: async () => {
    const table = freshTable();
    return { store: new PostgresStore({ pool, table }), reopen: () => new PostgresStore({ pool, table }) };
  },
});
