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
  /** How long a first hop that failed to open a stream stays at the back. @default 10000 */
  peerDownMs?: number;
}

/**
 * What a copy of the table needs (the entry's slow lane, src/proxy/lane/): the paths per
 * origin in the coordinator's order, the table's version, and the peers whose tunnel is
 * down. The short-lived hints of {@link RouteTable.markPeerDown} stay local to each copy.
 */
export interface RouteTableSnapshot {
  version: number;
  paths: Array<[origin: string, paths: string[][]]>;
  tunnelDown: string[];
}

/**
 * Rank of a path for new streams (lower first):
 * 0 every node on it is reachable as far as this entry knows;
 * 1 a node after the first hop has no tunnel to us (dead, or only our link to it is);
 * 2 the first hop itself is down: opening a stream there cannot work.
 */
type Rank = 0 | 1 | 2;

/**
 * The entry's route table: the coordinator's latest routes for this node, swapped
 * atomically on each push, with local failover that needs no coordinator:
 *
 * - A peer whose tunnel died ({@link markTunnelDown}: closed, reset, or silent past the
 *   keepalive's dead timeout) stays down until a tunnel to it is up again
 *   ({@link markPeerUp}). Paths through it go after the others at once, so new streams
 *   take the alternates. The mesh is a full mesh of tunnels, so the entry sees the death
 *   of any node on its paths (relay or exit), not only of its first hop; a path whose
 *   first hop is down goes last (it cannot open), one with a later node down before it
 *   (the node may be alive and only our link to it broken).
 * - A first hop that refused a stream ({@link markPeerDown}, the entry connector's hint)
 *   goes to the back for `peerDownMs`, then is tried again.
 *
 * Paths are demoted, never dropped: if every path is marked, the best marked one is still
 * tried. With no table yet, `pathsFor` is empty and the entry answers 502.
 */
export class RouteTable implements RouteSource {
  readonly nodeId: string;
  readonly #clock: Clock;
  readonly #peerDownMs: number;
  #routes = new Map<string, string[][]>();
  /** First hops that refused a stream, until when (clock time). */
  readonly #downUntil = new Map<string, number>();
  /** Peers whose tunnel died and has not come back. */
  readonly #tunnelDown = new Set<string>();
  #version = 0;
  readonly #listeners = new Set<() => void>();

  constructor(options: RouteTableOptions) {
    this.nodeId = options.nodeId;
    this.#clock = options.clock ?? systemClock;
    this.#peerDownMs = options.peerDownMs ?? 10_000;
  }

  /** Version of the table in use (0: none yet). */
  get version(): number {
    return this.#version;
  }

  /** Peers currently treated as unreachable (tunnel down, or a recent refused open). */
  get downPeers(): string[] {
    const now = this.#clock.now();
    const hinted = [...this.#downUntil].filter(([, until]) => until > now).map(([id]) => id);
    return [...new Set([...this.#tunnelDown, ...hinted])].sort();
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
    this.#changed();
  }

  /** The table as a copy needs it ({@link RouteTableSnapshot}). */
  snapshot(): RouteTableSnapshot {
    return {
      version: this.#version,
      paths: [...this.#routes].map(([origin, paths]) => [origin, paths.map((p) => [...p])]),
      tunnelDown: [...this.#tunnelDown].sort(),
    };
  }

  /** Takes another table's snapshot: its paths, version and dead tunnels replace this one's. */
  load(s: RouteTableSnapshot): void {
    this.#routes = new Map(s.paths.map(([origin, paths]) => [origin, paths.map((p) => [...p])]));
    this.#version = s.version;
    this.#tunnelDown.clear();
    for (const id of s.tunnelDown) this.#tunnelDown.add(id);
    this.#changed();
  }

  /** Whether the tunnel to `peerNodeId` is marked dead ({@link markTunnelDown}). */
  tunnelIsDown(peerNodeId: string): boolean {
    return this.#tunnelDown.has(peerNodeId);
  }

  /**
   * Calls `listener` after each change a copy must see: a new table, a tunnel down or up.
   * Returns the function that removes it.
   */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }

  /** Paths best first; paths through a down node go after the others (stable order). */
  pathsFor(origin: string): string[][] {
    const paths = this.#routes.get(origin) ?? [];
    const now = this.#clock.now();
    const ranked = paths.map((p) => ({ p, rank: this.#rank(p, now) }));
    // Array.prototype.sort is stable: equal ranks keep the coordinator's order.
    return ranked.sort((a, b) => a.rank - b.rank).map((x) => x.p);
  }

  /** Local failover hint: no stream could be opened to `peerNodeId`; prefer other first hops for a while. */
  markPeerDown(peerNodeId: string): void {
    this.#downUntil.set(peerNodeId, this.#clock.now() + this.#peerDownMs);
  }

  /** The tunnel to `peerNodeId` died: paths through it go last until {@link markPeerUp}. */
  markTunnelDown(peerNodeId: string): void {
    if (this.#tunnelDown.has(peerNodeId)) return;
    this.#tunnelDown.add(peerNodeId);
    this.#changed();
  }

  /** A tunnel to `peerNodeId` is up and answering: clears both kinds of mark. */
  markPeerUp(peerNodeId: string): void {
    this.#downUntil.delete(peerNodeId);
    if (this.#tunnelDown.delete(peerNodeId)) this.#changed();
  }

  #isDown(id: string, now: number): boolean {
    return this.#tunnelDown.has(id) || (this.#downUntil.get(id) ?? 0) > now;
  }

  #rank(path: string[], now: number): Rank {
    if (path.length < 2) return 0;
    if (this.#isDown(path[1] as string, now)) return 2;
    for (let i = 2; i < path.length; i++) if (this.#isDown(path[i] as string, now)) return 1;
    return 0;
  }
}
