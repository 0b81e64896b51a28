// The overlay as a picture: what the web map (controller/ui/web) draws and what `crosslink diagram`
// renders as DOT, SVG or Mermaid for the connection paperwork. Built by model.ts from the policy,
// the inventory, the pair paths and health; positioned by layout.ts. Pure data, JSON as served by
// GET /v1/diagram.

/** Health of a box or link, as /v1/health states it. */
export type DiagramState = 'ok' | 'degraded' | 'down' | 'unknown';

/** A subnet as the map shows it beside the box that serves it (or would). */
export interface DiagramSubnet {
  name: string;
  /** The prefixes the overlay knows (the mapped ones for a `map-to` subnet). */
  cidrs: string[];
  zone: string;
  /** serving: this box carries it now; standby: listed in its `via` but another box serves it. */
  role: 'serving' | 'standby';
}

export interface DiagramBox {
  name: string;
  /** The policy's `site`, or "" when none. */
  site: string;
  /** The box's zones, in policy order. */
  zones: string[];
  /** Key of the zone group it is drawn in (DiagramGroup.key). */
  group: string;
  /** Underlays (WANs) it sits on, sorted. */
  underlays: string[];
  /** It relays other boxes' encrypted datagrams (policy allows and the box consents). */
  isRelay: boolean;
  /** An agent has enrolled under this name (false: in the policy only, not deployed yet). */
  isEnrolled: boolean;
  /** Its config stream is open to this controller now. */
  isConnected: boolean;
  state: DiagramState;
  /** One line, as /v1/health gives it ("no report for 31 s"). */
  reason: string;
  subnets: DiagramSubnet[];
  /** Centre of the box on the canvas, in canvas units (layout.ts). */
  x: number;
  y: number;
}

export interface DiagramLink {
  /** "a:b" with a < b, as /v1/health's links. */
  name: string;
  a: string;
  b: string;
  state: DiagramState;
  reason: string;
  /** How the two boxes reach each other: over a shared underlay, through a relay, or not at all. */
  path: 'direct' | 'relay' | 'none';
  /** path relay: the relays, first choice first; the map draws the link through the first. */
  relays: string[];
  /** direct: the shared underlay; relay: a's and b's underlays. */
  underlays: string[];
  /** Names of the rules that permit a flow between the two boxes' subnets, sorted. */
  rules: string[];
}

/** A column of the map: the boxes that sit in exactly this set of zones ("n3", "n3+psn", "psn"). */
export interface DiagramGroup {
  /** Member zones joined by "+", in policy order; "" for boxes in no zone. */
  key: string;
  /** "N3", "N3 + PSN", "no zone" — for a heading. */
  label: string;
  zones: string[];
  /** Rectangle on the canvas. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface DiagramModel {
  /** Controller clock when built. */
  atMs: number;
  /** Version of the policy drawn; null before any policy. */
  policyVersion: number | null;
  zones: { name: string; description: string }[];
  underlays: { name: string; description: string }[];
  groups: DiagramGroup[];
  /** Sorted by name. */
  boxes: DiagramBox[];
  /** Sorted by name. Pairs with a permitted flow, and the link between a serving group's boxes (their
   *  failover depends on it; `rules` is empty there). */
  links: DiagramLink[];
  /** Subnets of the policy no box serves now, and why. */
  unserved: { subnet: string; reason: string }[];
  /** Canvas size. */
  width: number;
  height: number;
}
