import t from 'tap';
import { storeContract } from './store.contract.js';
import { MemoryStore } from './memory.js';

storeContract(t, async () => ({ store: new MemoryStore(), cleanup: async () => {} }));
