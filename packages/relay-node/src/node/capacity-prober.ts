import {
  type Clock,
  F,
  type Logger,
  silentLogger,
  systemClock,
  type TimerHandle,
  WireCode,
} from '@relaymesh/shared';
import type { Session } from '../mux/session.ts';
import { runProbe } from '../proxy/probe.ts';
import type { HopStream } from '../proxy/types.ts';
import { LinkCapacity, type LinkCapacityOptions } from './link-capacity.ts';
import type { PeerManager } from './peer-manager.ts';

export interface CapacityProberOptions {
  nodeId: string;
  peers: PeerManager;
  /** Schedule (see {@link LinkCapacity}); `intervalMs` 0 disables probing. */
  schedule?: Partial<LinkCapacityOptions>;
  /** Most bytes the peer sends per probe (fewer on a fallen link). @default 65536 */
  probeBytes?: number;
  /** A probe not done by then yields what arrived and is reset. @default 4000 */
  probeTimeoutMs?: number;
  /** How often the schedule is checked. @default 250 */
  tickMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** A peer link's capacity towards this node, bytes per second. */
export interface CapacityView {
  currentBps: number;
  peakBps: number;
}

interface Peer {
  capacity: LinkCapacity;
  session: Session | undefined;
  probing: boolean;
  degraded: boolean;
}

/**
 * Probes the capacity of every connected peer's link (one probe per peer at a time, on
 * the schedule of {@link LinkCapacity}) and keeps the estimates for the node's reports.
 * Cost at rest: `probeBytes` per peer per `intervalMs` (64 KiB / 30 s by default).
 */
export class CapacityProber {
  readonly #o: CapacityProberOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #peers = new Map<string, Peer>();
  #timer: TimerHandle | undefined;
  #seq = 0;
  #stopped = false;

  constructor(options: CapacityProberOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'capacity-prober',
      [F.NODE_ID]: options.nodeId,
    });
  }

  /** Starts checking the schedule. Does nothing when probing is disabled. */
  start(): void {
    if (this.#stopped || this.#timer !== undefined) return;
    if ((this.#o.schedule?.intervalMs ?? 1) <= 0) return;
    this.#schedule();
  }

  /** Stops probing (probes in flight end on their own timeout or tunnel close). Idempotent. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The estimate for `peerId`, undefined before its first sample. */
  capacity(peerId: string): CapacityView | undefined {
    const p = this.#peers.get(peerId);
    const currentBps = p?.capacity.currentBps;
    const peakBps = p?.capacity.peakBps(this.#clock.now());
    if (currentBps === undefined || peakBps === undefined) return undefined;
    return { currentBps, peakBps };
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#stopped) return;
      this.#tick();
      this.#schedule();
    }, this.#o.tickMs ?? 250);
  }

  #tick(): void {
    const now = this.#clock.now();
    const connected = new Set(this.#o.peers.connectedPeers);
    for (const [id, p] of this.#peers) {
      if (connected.has(id)) continue;
      if (!this.#o.peers.knownPeers.has(id)) this.#peers.delete(id);
      // The estimates stay (same link); the dead session (transport, socket) is let go.
      else p.session = undefined;
    }
    for (const id of connected) {
      const session = this.#o.peers.sessionFor(id);
      if (session === undefined || session.state !== 'open') continue;
      let p = this.#peers.get(id);
      if (p === undefined) {
        p = {
          capacity: new LinkCapacity(now, this.#o.schedule),
          session,
          probing: false,
          degraded: false,
        };
        this.#peers.set(id, p);
      } else if (p.session !== session) {
        p.session = session;
        p.capacity.tunnelUp(now);
      }
      if (!p.probing && p.capacity.due(now, session.rttStats)) this.#probe(id, p, session, now);
    }
  }

  #probe(id: string, p: Peer, session: Session, now: number): void {
    p.probing = true;
    p.capacity.started(now);
    let stream: HopStream;
    try {
      stream = this.#o.peers.open(id) as HopStream;
    } catch {
      p.probing = false;
      p.capacity.failed();
      return;
    }
    runProbe({
      stream,
      nodeId: this.#o.nodeId,
      id: `probe-${this.#o.nodeId}-${++this.#seq}`,
      bytes: p.capacity.probeBytes(this.#o.probeBytes ?? 64 * 1024),
      timeoutMs: this.#o.probeTimeoutMs ?? 4000,
      sessionBytes: () => session.bytesReceived,
      clock: this.#clock,
    }).then(
      (r) => {
        p.probing = false;
        p.capacity.sample(this.#clock.now(), r.bps);
        this.#log.debug(
          { [F.PEER_NODE_ID]: id, bps: Math.round(r.bps), complete: r.complete, ms: r.ms },
          'capacity sample',
        );
        this.#logTransition(id, p);
      },
      (err: unknown) => {
        p.probing = false;
        // Only a refusal (an older peer: unknown kind) waits the regular period; a stream
        // lost with its tunnel or timed out keeps the schedule.
        if (stream.resetCode === WireCode.BAD_OPEN_HEADER) p.capacity.failed();
        this.#log.debug({ [F.PEER_NODE_ID]: id, err }, 'capacity probe failed');
      },
    );
  }

  /** Logs once when a link falls below half its peak, and once when it recovers. */
  #logTransition(id: string, p: Peer): void {
    const now = this.#clock.now();
    const degraded = p.capacity.degraded(now);
    if (degraded === p.degraded) return;
    p.degraded = degraded;
    const fields = {
      [F.PEER_NODE_ID]: id,
      currentBps: Math.round(p.capacity.currentBps ?? 0),
      peakBps: Math.round(p.capacity.peakBps(now) ?? 0),
    };
    if (degraded) this.#log.warn(fields, 'link capacity fell below half its peak');
    else this.#log.info(fields, 'link capacity recovered');
  }
}
