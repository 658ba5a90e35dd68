import { EventEmitter } from 'node:events';
import {
  type BackoffOptions,
  type Clock,
  F,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
  type TimerHandle,
} from '@relaymesh/shared';
import type { PeerInfo } from '../control/snapshots.ts';
import type { Session } from '../mux/session.ts';
import type { MuxStream } from '../mux/stream.ts';
import type { TunnelDialer } from '../tunnel/dialer.ts';
import type { TunnelListener } from '../tunnel/listener.ts';
import { PersistentTunnel } from '../tunnel/persistent-tunnel.ts';
import type { Tunnel } from '../tunnel/tunnel.ts';

/** See {@link PeerManagerOptions.forgetAfterMs}. */
export const DEFAULT_PEER_FORGET_MS = 15_000;

export interface PeerManagerOptions {
  nodeId: string;
  /** Accepted tunnels arrive here (the node owns and closes it). */
  listener: TunnelListener;
  /** Dials the peers this node is responsible for (see {@link dialsPeer}). */
  dialer: TunnelDialer;
  /** Every stream a peer opens on any tunnel (the data plane takes it). Must not throw. */
  onStream: (stream: MuxStream, peerNodeId: string) => void;
  /** Redial backoff of the dialed tunnels. @default PersistentTunnel's (200 ms x1.6 to 30 s) */
  backoff?: BackoffOptions;
  /**
   * A peer missing from the membership this long loses its tunnel. Longer than the
   * coordinator's warm-up (6 s) plus the nodes' re-registration backoff cap (5 s), so a
   * coordinator restart never cuts live tunnels. A peer that leaves gracefully closes its
   * tunnels itself, and a dead one is found by the mux keepalive. @default 15000
   */
  forgetAfterMs?: number;
  clock?: Clock;
  logger?: Logger;
}

/** What the measurement source needs of one peer's tunnel. */
export interface PeerLinkView {
  peerNodeId: string;
  /** A tunnel is up and its session accepts new streams. */
  up: boolean;
  srttMs: number | undefined;
  /** Least RTT sample of the last few PINGs (the mux RttEstimator's windowMin). */
  baseRttMs: number | undefined;
  /** Their mean excess over that least one (the mux RttEstimator's windowJitter). */
  jitterMs: number | undefined;
  /** Clock time of the newest RTT sample on the tunnel in use, if any. */
  lastRttAt: number | undefined;
}

interface Live {
  tunnel: Tunnel;
  lastRttAt: number | undefined;
}

/**
 * Which side of a pair dials: the node whose id sorts lower (UTF-16 code-unit order, the
 * same on every node), so each pair has exactly one tunnel and both ends agree without
 * talking. The other side only accepts.
 */
export function dialsPeer(nodeId: string, peerNodeId: string): boolean {
  return nodeId < peerNodeId;
}

/**
 * Keeps one tunnel per peer pair: for every peer in the membership that this node is
 * responsible for ({@link dialsPeer}), a {@link PersistentTunnel} to its advertised URL;
 * the other peers dial us and arrive through the listener. Peers missing from the
 * membership for `forgetAfterMs` lose their tunnel (GO_AWAY, drain). Every tunnel's
 * streams go to `onStream`.
 *
 * Events: `'ready'` (peerNodeId) on the first RTT sample of a new tunnel (the link can be
 * reported), `'draining'` (peerNodeId) when the peer sends GO_AWAY on the tunnel in use,
 * `'down'` (peerNodeId) when the tunnel in use ends and no other is up.
 * Handlers must not throw.
 */
export class PeerManager extends EventEmitter {
  readonly #o: PeerManagerOptions;
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Peers this node dials: the advertised URL each PersistentTunnel was made for. */
  readonly #dialed = new Map<string, { url: string; persistent: PersistentTunnel }>();
  /** The tunnel in use per peer, whichever side opened it. */
  readonly #live = new Map<string, Live>();
  readonly #wired = new WeakMap<Tunnel, Live>();
  #known = new Set<string>();
  /** Peers missing from the membership, since when (clock time). */
  readonly #absentSince = new Map<string, number>();
  readonly #forgetAfterMs: number;
  #forgetTimer: TimerHandle | undefined;
  #closed = false;
  readonly #onAccepted = (t: Tunnel) => this.#adopt(t);

  constructor(options: PeerManagerOptions) {
    super();
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#forgetAfterMs = options.forgetAfterMs ?? DEFAULT_PEER_FORGET_MS;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'peer-manager',
      [F.NODE_ID]: options.nodeId,
    });
    options.listener.on('tunnel', this.#onAccepted);
  }

  /** Peers in the last membership. */
  get knownPeers(): ReadonlySet<string> {
    return this.#known;
  }

  /** Peers with a tunnel up. */
  get connectedPeers(): string[] {
    return [...this.#live.keys()];
  }

  /** The session to `peerNodeId`, or undefined when no tunnel is up. */
  sessionFor(peerNodeId: string): Session | undefined {
    return this.#live.get(peerNodeId)?.tunnel.session;
  }

  /**
   * Opens a stream to a directly connected peer.
   * @throws RelayError ERR_TUNNEL_DOWN when no tunnel is up, or the Session's own errors
   *   (ERR_MUX_GOING_AWAY, ERR_MUX_TOO_MANY_STREAMS, ...).
   */
  open(peerNodeId: string): MuxStream {
    const live = this.#live.get(peerNodeId);
    if (live === undefined) {
      throw new RelayError('ERR_TUNNEL_DOWN', `no tunnel to ${peerNodeId} is up`, {
        details: { peerNodeId },
      });
    }
    return live.tunnel.session.open();
  }

  /** RTT view of one peer's link for measurement reports. */
  view(peerNodeId: string): PeerLinkView {
    const live = this.#live.get(peerNodeId);
    const stats = live?.tunnel.session.rttStats;
    return {
      peerNodeId,
      up: live !== undefined && live.tunnel.session.state === 'open',
      srttMs: stats?.srttMs,
      baseRttMs: stats?.windowMinMs,
      jitterMs: stats?.windowJitterMs,
      lastRttAt: live?.lastRttAt,
    };
  }

  /**
   * Applies a membership: dial new peers we are responsible for, redial at once a peer
   * that moved (new advertise URL), and drop the tunnel of a peer only after it has been
   * missing for `forgetAfterMs`: right after a coordinator restart the membership fills up
   * over a few seconds, and live tunnels must not be cut meanwhile.
   */
  setPeers(peers: readonly PeerInfo[]): void {
    if (this.#closed) return;
    const want = new Map<string, PeerInfo>();
    for (const p of peers) if (p.id !== this.#o.nodeId) want.set(p.id, p);
    for (const [id, d] of this.#dialed) {
      const p = want.get(id);
      if (p === undefined || p.advertise === d.url) continue;
      this.#log.info({ [F.PEER_NODE_ID]: id, url: p.advertise }, 'peer moved: redialing');
      this.#dialed.delete(id);
      void d.persistent.close();
    }
    const now = this.#clock.now();
    for (const id of [...this.#known, ...this.#dialed.keys()]) {
      if (!want.has(id) && !this.#absentSince.has(id)) this.#absentSince.set(id, now);
    }
    for (const id of want.keys()) this.#absentSince.delete(id);
    for (const p of want.values()) {
      if (dialsPeer(this.#o.nodeId, p.id) && !this.#dialed.has(p.id)) this.#dial(p);
    }
    this.#known = new Set(want.keys());
    this.#scheduleForget();
  }

  /** Sends GO_AWAY on every tunnel: peers stop opening streams to us. */
  goAwayAll(): void {
    for (const live of this.#live.values()) live.tunnel.session.goAway();
    for (const t of this.#o.listener.tunnels.values()) t.session.goAway();
  }

  /** Stops dialing and closes the dialed tunnels gracefully. Idempotent. */
  async close(): Promise<void> {
    const dialed = this.#stop();
    await Promise.all(dialed.map((d) => d.close()));
  }

  /** Stops dialing and destroys the dialed tunnels. Idempotent. */
  destroy(err?: Error): void {
    for (const d of this.#stop()) d.destroy(err);
  }

  #stop(): PersistentTunnel[] {
    if (this.#closed) return [];
    this.#closed = true;
    this.#o.listener.off('tunnel', this.#onAccepted);
    if (this.#forgetTimer !== undefined) this.#clock.clearTimeout(this.#forgetTimer);
    this.#forgetTimer = undefined;
    const all = [...this.#dialed.values()].map((d) => d.persistent);
    this.#dialed.clear();
    return all;
  }

  #scheduleForget(): void {
    if (this.#forgetTimer !== undefined || this.#absentSince.size === 0 || this.#closed) return;
    const oldest = Math.min(...this.#absentSince.values());
    const delay = Math.max(0, oldest + this.#forgetAfterMs - this.#clock.now());
    this.#forgetTimer = this.#clock.setTimeout(() => {
      this.#forgetTimer = undefined;
      this.#forget();
      this.#scheduleForget();
    }, delay);
  }

  /** Closes the tunnels of peers missing from the membership for forgetAfterMs. */
  #forget(): void {
    const now = this.#clock.now();
    for (const [id, since] of this.#absentSince) {
      if (now - since < this.#forgetAfterMs) continue;
      this.#absentSince.delete(id);
      this.#log.info({ [F.PEER_NODE_ID]: id }, 'peer left the membership: closing its tunnel');
      const d = this.#dialed.get(id);
      this.#dialed.delete(id);
      void d?.persistent.close();
      void this.#o.listener.tunnels.get(id)?.close();
    }
  }

  #dial(p: PeerInfo): void {
    if (p.advertise === '') {
      this.#log.warn({ [F.PEER_NODE_ID]: p.id }, 'peer has no advertise url: not dialing');
      return;
    }
    let persistent: PersistentTunnel;
    try {
      persistent = new PersistentTunnel({
        dialer: this.#o.dialer,
        url: p.advertise,
        expectedPeerNodeId: p.id,
        clock: this.#clock,
        ...(this.#o.backoff ? { backoff: this.#o.backoff } : {}),
      });
    } catch (err) {
      this.#log.warn({ [F.PEER_NODE_ID]: p.id, err }, 'cannot dial peer');
      return;
    }
    persistent.on('up', (t: Tunnel) => this.#adopt(t));
    this.#dialed.set(p.id, { url: p.advertise, persistent });
    this.#log.info({ [F.PEER_NODE_ID]: p.id, url: p.advertise }, 'dialing peer');
  }

  /** Makes `tunnel` the one in use for its peer; wires its streams and RTT samples once. */
  #adopt(tunnel: Tunnel): void {
    const peer = tunnel.peerNodeId;
    let live = this.#wired.get(tunnel);
    if (live === undefined) {
      const l: Live = { tunnel, lastRttAt: undefined };
      live = l;
      this.#wired.set(tunnel, l);
      // Streams of every tunnel are served, in use or not: the peer chose to send them.
      tunnel.session.on('stream', (s: MuxStream) => this.#o.onStream(s, peer));
      tunnel.session.on('rtt', () => {
        const first = l.lastRttAt === undefined;
        l.lastRttAt = this.#clock.now();
        if (first && this.#live.get(peer) === l) this.#emitSafe('ready', peer);
      });
      // The peer is draining (it sent GO_AWAY: a SIGTERM, usually): no new streams to it,
      // and relays' tunnels to it drain too, so paths through it anywhere should wait.
      tunnel.session.on('goaway', () => {
        if (this.#live.get(peer) === l) this.#emitSafe('draining', peer);
      });
      tunnel.once('close', () => this.#onTunnelClose(l));
    }
    this.#live.set(peer, live);
    if (live.lastRttAt !== undefined) this.#emitSafe('ready', peer);
  }

  #onTunnelClose(live: Live): void {
    const peer = live.tunnel.peerNodeId;
    if (this.#live.get(peer) !== live) return;
    this.#live.delete(peer);
    // Another tunnel may still be up (both sides dialed during an id-order change).
    const other = this.#dialed.get(peer)?.persistent.current ?? this.#o.listener.tunnels.get(peer);
    if (other !== undefined && !other.isClosed && other !== live.tunnel) {
      this.#adopt(other);
      return;
    }
    this.#emitSafe('down', peer);
  }

  #emitSafe(event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args);
    } catch (err) {
      this.#log.error({ err, event }, 'peer manager listener threw');
    }
  }
}
