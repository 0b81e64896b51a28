// Lets `node --import ./bench/register.js bench/x.ts` run TypeScript benchmarks directly.
import { register } from 'tsx/esm/api';

register();
