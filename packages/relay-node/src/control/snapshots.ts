import type {
  Membership__Output,
  NodeInfo__Output,
  OriginInfo__Output,
  Route__Output,
} from '@relaymesh/shared';
import type { OriginConfig } from '../routing/origin-catalog.ts';
import type { RouteEntry } from '../routing/route-table.ts';

/**
 * The versioned route table this node serves from, shaped for `RouteTable.update(routes,
 * version)` in routing/.
 */
export interface RouteTableSnapshot {
  version: number;
  /** This node's routes (from = this node), one per reachable origin. */
  routes: RouteEntry[];
}

/** A peer as the coordinator announces it. */
export interface PeerInfo {
  id: string;
  region: string;
  advertise: string;
  /** Empty when the peer did not announce one. */
  httpAdvertise: string;
  status: string;
}

/** The peers to keep tunnels to and measure, and the declared origins. */
export interface MembershipSnapshot {
  version: number;
  peers: PeerInfo[];
  origins: OriginConfig[];
}

export function toRouteTable(
  version: number,
  routes: readonly Route__Output[],
): RouteTableSnapshot {
  return {
    version,
    routes: routes.map((r) => ({
      from: r.from,
      origin: r.origin,
      path: [...r.path],
      rttMs: r.rttMs,
      alternates: r.alternates.map((a) => ({ path: [...a.path], rttMs: a.rttMs })),
    })),
  };
}

function toPeer(n: NodeInfo__Output): PeerInfo {
  return {
    id: n.id,
    region: n.region,
    advertise: n.advertise,
    httpAdvertise: n.httpAdvertise,
    status: n.status,
  };
}

function toOrigin(o: OriginInfo__Output): OriginConfig {
  const info: OriginConfig = { name: o.name, hosts: [...o.hosts], upstreams: [...o.upstreams] };
  if (o.healthCheck) info.healthCheck = { ...o.healthCheck };
  return info;
}

export function toMembership(m: Membership__Output): MembershipSnapshot {
  return { version: m.version, peers: m.peers.map(toPeer), origins: m.origins.map(toOrigin) };
}
