import type { NodeInfo, OriginConfig, OriginInfo, Route } from '@relaymesh/shared';
import type { NodeRecord } from '../membership/registry.ts';
import type { PlannedRoute } from '../paths/index.ts';

/** RTTs leave the coordinator rounded to 0.1 ms: finer digits are noise. */
export function roundMs(v: number): number {
  return Math.round(v * 10) / 10;
}

export function routeToMessage(r: PlannedRoute): Route {
  return {
    from: r.from,
    origin: r.origin,
    path: r.path,
    rttMs: roundMs(r.rttMs),
    alternates: r.alternates.map((a) => ({ path: a.path, rttMs: roundMs(a.rttMs) })),
  };
}

export function nodeToMessage(r: NodeRecord): NodeInfo {
  return {
    id: r.id,
    region: r.region,
    advertise: r.advertise,
    httpAdvertise: r.httpAdvertise,
    status: r.status,
    version: r.version,
  };
}

export function originToMessage(o: OriginConfig): OriginInfo {
  const info: OriginInfo = {
    name: o.name,
    hosts: o.hosts,
    upstreams: o.upstreams.map((u) => u.url),
  };
  if (o.healthCheck !== undefined) info.healthCheck = { ...o.healthCheck };
  return info;
}
