// Fingerprint of an nft table listing: counters change with traffic, so they are stripped before
// hashing; everything else (chains, rules, set elements) is part of the fingerprint.
import { createHash } from 'node:crypto';

export function normaliseNftListing(text: string): string {
  return text
    .split('\n')
    .filter((line) => !/^\s*packets \d+ bytes \d+\s*$/.test(line)) // body of a named counter
    .map((line) => line.replace(/ counter packets \d+ bytes \d+/g, ' counter').trimEnd())
    .filter((line) => line !== '')
    .join('\n');
}

export function firewallFingerprint(listing: string): string {
  return createHash('sha256').update(normaliseNftListing(listing)).digest('hex');
}
