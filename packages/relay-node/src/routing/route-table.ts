import { type Clock, systemClock } from '@relaymesh/shared';
import type { RouteSource } from '../proxy/types.ts';

/** One route as pushed by the coordinator (`Route`): best path and alternates. */
export interface RouteEntry {
  from: string;
  origin: string;
  /** Node ids, entry first, exit last. */
  path: string[];
  rttMs: number;
  alternates: Array<{ path: string[]; rttMs: number }>;
}

export interface RouteTableOptions {
  /** This node (the entry): routes from other nodes are ignored. */
  nodeId: string;
  clock?: Clock;
  /** How long a first hop marked down stays at the back of the order. @default 10000 */
  peerDownMs?: number;
}

/**
 * The entry's route table: the coordinator's latest routes for this node, swapped
 * atomically on each push, with local failover: paths whose first hop failed recently go
 * after the others until the mark expires (the coordinator's next table will usually have
 * moved them anyway). With no table yet, `pathsFor` is empty and the entry answers 502.
 */
export class RouteTable implements RouteSource {
  readonly nodeId: string;
  readonly #clock: Clock;
  readonly #peerDownMs: number;
  #routes = new Map<string, string[][]>();
  readonly #downUntil = new Map<string, number>();
  #version = 0;

  constructor(options: RouteTableOptions) {
    this.nodeId = options.nodeId;
    this.#clock = options.clock ?? systemClock;
    this.#peerDownMs = options.peerDownMs ?? 10_000;
  }

  /** Version of the table in use (0: none yet). */
  get version(): number {
    return this.#version;
  }

  /** Replaces the whole table (routes not from this node are ignored). */
  update(routes: RouteEntry[], version = this.#version + 1): void {
    const next = new Map<string, string[][]>();
    for (const r of routes) {
      if (r.from !== this.nodeId || r.path[0] !== this.nodeId) continue;
      const seen = new Set<string>();
      const paths: string[][] = [];
      for (const p of [r.path, ...r.alternates.map((a) => a.path)]) {
        const key = p.join(',');
        if (p.length === 0 || p[0] !== this.nodeId || seen.has(key)) continue;
        seen.add(key);
        paths.push([...p]);
      }
      next.set(r.origin, paths);
    }
    this.#routes = next;
    this.#version = version;
  }

  /** Paths best first; those through a first hop marked down go last (stable order). */
  pathsFor(origin: string): string[][] {
    const paths = this.#routes.get(origin) ?? [];
    const now = this.#clock.now();
    const down = (p: string[]) => p.length > 1 && (this.#downUntil.get(p[1] as string) ?? 0) > now;
    return [...paths.filter((p) => !down(p)), ...paths.filter(down)];
  }

  /** Local failover: the session to `peerNodeId` failed; prefer other first hops for a while. */
  markPeerDown(peerNodeId: string): void {
    this.#downUntil.set(peerNodeId, this.#clock.now() + this.#peerDownMs);
  }

  markPeerUp(peerNodeId: string): void {
    this.#downUntil.delete(peerNodeId);
  }
}
