import { memoryLocks, memoryLockTable } from '../src/index.js';
import { lockContract } from './contract.js';

const table = memoryLockTable();
lockContract('memory', (opts) => memoryLocks({ ...opts, table }));
