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

export interface Zone { name: string; description: string }

export interface PolicyAgent { name: AgentName; site?: string; zones: string[] }

export interface Subnet {
  name: SubnetName;
  /** Canonical prefixes, host bits clear, sorted. */
  cidrs: string[];
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

export interface Group { name: string; members: string[]; description?: string }

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
  /** Underlay "host:port"; empty if unknown. */
  endpoint: string;
  /** Overlay address with the pool prefix length, e.g. "100.64.0.7/10". */
  overlayAddress: string;
  /** Prefixes the agent says it can serve. A subnet is served only if all its cidrs are covered. */
  advertised: string[];
  /** Forwarding health: false takes the agent out of serving its subnets. */
  isHealthy: boolean;
}

export interface Inventory { agents: InventoryAgent[] }

export type { AgentConfig };
