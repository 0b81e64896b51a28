// Protocol versions of the agent <-> controller contract (proto/crosslink/v1/agent.proto).
// Bump PROTOCOL_VERSION only for a change an older peer cannot ignore; list every version the
// controller still serves in SUPPORTED_PROTOCOL_VERSIONS.
export const PROTOCOL_VERSION = 1;
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1];

/** Returns null when `v` is supported, or a message naming both sides' versions. */
export function checkProtocolVersion(
  v: number,
  supported: readonly number[] = SUPPORTED_PROTOCOL_VERSIONS,
): string | null {
  if (supported.includes(v)) return null;
  if (v === 0) return `protocol_version is missing; this controller speaks ${supported.join(', ')}`;
  return `agent speaks protocol ${v}, this controller speaks ${supported.join(', ')}: upgrade the ${v < Math.min(...supported) ? 'agent' : 'controller'}`;
}
