// The policy document as validated, and the live inventory the compiler reads. Pure data.
import type { AgentConfig } from '../../proto/gen/crosslink/v1/agent_pb.js';

export type AgentName = string & { readonly __brand: 'AgentName' };
export type SubnetName = string & { readonly __brand: 'SubnetName' };

export type Protocol = 'tcp' | 'udp' | 'icmp' | 'any';

/** One entry of a rule's `ports`: protocol plus an inclusive port range (tcp/udp only). */
export interface PortSpec {
  protocol: Protocol;
  /** Absent for icmp/any, and for tcp/udp meaning all ports. */
  first?: number;
  last?: number;
}

export interface Zone {
  name: string;
  description: string;
}

/** An underlay network boxes send WireGuard datagrams over (a WAN such as N3/HSCN or the PSN). */
export interface Underlay {
  name: string;
  description: string;
}

/** The underlay of a policy without an `underlays` section, and of a bare HOST:PORT endpoint. */
export const DEFAULT_UNDERLAY = 'default';

export interface PolicyAgent {
  name: AgentName;
  site?: string;
  zones: string[];
  /**
   * Underlays the box sits on, sorted. Always set after validation: the agent's `underlays`, or
   * the only underlay there is (DEFAULT_UNDERLAY when the policy declares none).
   */
  underlays: string[];
  /** The policy allows this box to relay between its underlays (the box must consent too). */
  isRelay: boolean;
}

export interface Subnet {
  name: SubnetName;
  /**
   * Canonical prefixes, host bits clear, sorted: the subnet as the overlay knows it. For a subnet
   * with `map-to` these are the mapped prefixes; its real ones are in `realCidrs`.
   */
  cidrs: string[];
  /**
   * `map-to`: the subnet's real (LAN) prefixes, `realCidrs[i]` translated 1:1 to `cidrs[i]` by its
   * own serving box. Absent: not mapped (the real prefixes are `cidrs`).
   */
  realCidrs?: string[];
  zone: string;
  /** Agents that may serve it, in priority order: first is primary. */
  via: AgentName[];
  masquerade: boolean;
  /**
   * Virtual gateway addresses (at most one per family), each with the prefix length of the subnet
   * prefix it lies in ("10.20.1.1/24"), IPv4 first. Absent or empty: no virtual gateway.
   */
  gateways?: string[];
  description?: string;
}

export interface Group {
  name: string;
  members: string[];
  description?: string;
}

/**
 * A path probe carried by a rule. The agent serving `from` sends it from its own address in that
 * subnet, so it crosses both boxes' firewalls.
 */
export interface RuleProbe {
  /** Source subnet: a subnet of the rule's `from` (validation fills in the first one when absent). */
  from: SubnetName;
  /** Target address, canonical, no prefix length. */
  to: string;
  /** tcp/udp only. */
  port?: number;
  proto: 'tcp' | 'udp' | 'icmp';
  expect: 'allow' | 'deny';
}

export interface Rule {
  name: string;
  from: string[];
  to: string[];
  ports: PortSpec[];
  description?: string;
  ticket?: string;
  probes: RuleProbe[];
  /** `not-before`: ms since the epoch; the rule admits nothing before it. Absent: no start. */
  notBeforeMs?: number;
  /** `not-after`: ms since the epoch; from it on the rule admits nothing and its flows are cut. */
  notAfterMs?: number;
}

/**
 * A policy test. `from`/`to` are addresses or subnet names. With neither `port` nor `proto` the
 * test asks "is any traffic at all allowed"; with `port` alone the protocol is tcp.
 */
export interface PolicyTest {
  name?: string;
  from: string;
  to: string;
  port?: number;
  proto?: 'tcp' | 'udp' | 'icmp';
  expect: 'allow' | 'deny';
}

/** A validated policy document. Produced only by parsePolicy()/validatePolicy(). */
export interface Policy {
  version: 1;
  /** Declared underlays, sorted by name. Empty: one underlay, DEFAULT_UNDERLAY. */
  underlays: Underlay[];
  zones: Zone[];
  agents: PolicyAgent[];
  subnets: Subnet[];
  groups: Group[];
  rules: Rule[];
  tests: PolicyTest[];
}

/** What the controller knows live about one agent. */
export interface InventoryAgent {
  name: AgentName;
  /** WireGuard public key, base64. */
  publicKey: string;
  /** Underlay "host:port"; empty if unknown. With `endpoints`, the first of them. */
  endpoint: string;
  /**
   * One endpoint per underlay the box announced, sorted by underlay. Absent or empty: `endpoint`
   * alone, on DEFAULT_UNDERLAY (an agent that predates underlays).
   */
  endpoints?: Array<{ underlay: string; endpoint: string }>;
  /** The box consents to relay (`--relay`). Absent: false. */
  isRelay?: boolean;
  /** Overlay address with the pool prefix length, e.g. "100.64.0.7/10". */
  overlayAddress: string;
  /** Prefixes the agent says it can serve. A subnet is served only if all its cidrs are covered. */
  advertised: string[];
  /** Forwarding health: false takes the agent out of serving its subnets. */
  isHealthy: boolean;
}

export interface Inventory {
  agents: InventoryAgent[];
}

export type { AgentConfig };
