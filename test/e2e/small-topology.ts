// A small fleet for the scenarios that don't need all of Leeds: boxes alpha, beta, gamma (as many
// as asked), each with one LAN 10.<n>.1.0/24 (+ fd00:<n>:1::/64) and one host <x>1 at .10 / ::10.
import type { TestbedDescription } from '../testbed/topology.js';

export const SMALL_BOXES = ['alpha', 'beta', 'gamma'] as const;
export type SmallBox = (typeof SMALL_BOXES)[number];

export function smallTopology(count: 2 | 3): TestbedDescription {
  const boxes = SMALL_BOXES.slice(0, count);
  return {
    controller: true,
    boxes: boxes.map((name, i) => ({
      name,
      lans: [{ lan: `${name}-lan`, address: `10.${i + 1}.1.1/24`, address6: `fd00:${i + 1}:1::1/64` }],
    })),
    hosts: boxes.map((name, i) => ({
      name: `${name[0]}1`,
      lan: `${name}-lan`,
      address: `10.${i + 1}.1.10/24`,
      address6: `fd00:${i + 1}:1::10/64`,
    })),
  };
}

/** Address of host <x>1 behind box number n (1-based). */
export function smallHostAddress(box: SmallBox): string {
  return `10.${SMALL_BOXES.indexOf(box) + 1}.1.10`;
}

/** A policy over the small boxes with the given rules (YAML list items, indented two spaces). */
export function smallPolicy(count: 2 | 3, rules: string[]): string {
  const boxes = SMALL_BOXES.slice(0, count);
  return [
    'version: 1',
    'zones:',
    '  n3: { description: test zone }',
    'agents:',
    ...boxes.map((b) => `  ${b}: { zones: [n3] }`),
    'subnets:',
    ...boxes.map((b, i) => `  ${b}-lan: { cidr: [10.${i + 1}.1.0/24, fd00:${i + 1}:1::/64], zone: n3, via: [${b}] }`),
    rules.length > 0 ? 'rules:' : 'rules: []',
    ...rules,
    '',
  ].join('\n');
}

/** One rule as a YAML list item. */
export function rule(name: string, from: string, to: string, ports: string[]): string {
  return `  - { name: ${name}, from: ${from}, to: ${to}, ports: [${ports.join(', ')}] }`;
}
