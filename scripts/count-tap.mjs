// Counts the test points in tap's saved results (.tap/test-results/**/*.tap) and prints
// "N passed, N failed[, N skipped]". A subtest counts through its own assertions; a subtest that
// failed without a failing assertion of its own (a throw, a timeout) counts as one failure.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from 'tap-parser';

const dir = process.argv[2] ?? '.tap/test-results';
const files = [];
(function walk(d) {
  for (const f of readdirSync(d)) {
    const p = join(d, f);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.test.ts.tap')) files.push(p);
  }
})(dir);

let passed = 0,
  failed = 0,
  skipped = 0;
function count(text) {
  // Returns the number of failures found beneath this parser.
  return new Promise((resolve) => {
    const p = new Parser();
    attach(p, () => {});
    p.on('complete', () => resolve());
    p.end(text);
  });
}
function attach(parser, onFail) {
  const pendingChildren = [];
  parser.on('child', (child) => {
    const rec = { fails: 0 };
    pendingChildren.push(rec);
    attach(child, () => {
      rec.fails++;
      onFail();
    });
  });
  parser.on('assert', (res) => {
    // A subtest's summary line follows its child parser.
    const child =
      res.name && pendingChildren.length && res.fullname !== undefined ? pendingChildren.shift() : undefined;
    if (child) {
      if (!res.ok && !res.todo && child.fails === 0) {
        failed++;
        onFail();
      }
      return;
    }
    if (res.skip || res.todo) skipped++;
    else if (res.ok) passed++;
    else {
      failed++;
      onFail();
    }
  });
}
for (const f of files) await count(readFileSync(f, 'utf8'));
if (files.length === 0) failed++;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
