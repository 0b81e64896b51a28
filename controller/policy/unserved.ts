// The reasons the compiler gives for an unserved subnet ("a is not enrolled; b does not advertise
// fd20:8::/64") and what the API and the CLI read from them. Tiny and dependency-free, so
// `crosslink check` does not load the compiler to use it.
export const NOT_ENROLLED = ' is not enrolled';

/** True when the unserved reason names `agent` as one that cannot serve the subnet. */
export function isUnservedBecauseOf(agent: string, unservedReason: string): boolean {
  return unservedReason.split('; ').some((part) => part.startsWith(`${agent} `));
}

/** True when a subnet is unserved only because no box of its `via` has enrolled yet (a box not
 *  deployed), not because an enrolled box is at fault (unhealthy, not advertising the prefixes). */
export function isAwaitingEnrolment(unservedReason: string): boolean {
  return unservedReason.split('; ').every((part) => part.endsWith(NOT_ENROLLED));
}
