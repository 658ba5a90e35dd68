import {
  type BackoffOptions,
  type Clock,
  type Dialer,
  type Logger,
  silentLogger,
  systemClock,
} from '@relaymesh/shared';
import { CoordinatorClient, type NodeIdentity } from './coordinator-client.ts';
import type { PeerMeasurement } from './measurements.ts';
import { OriginProber } from './origin-prober.ts';
import type { MembershipSnapshot } from './snapshots.ts';

export interface NodeControlOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  token: string;
  node: NodeIdentity;
  /** The node's dialer: origin probes go through it (egress proxy included). */
  dialer: Dialer;
  /** The tunnels' current view of each peer; called once per report. */
  peers: () => PeerMeasurement[];
  /** Origin probe period and timeout. @default 5000 / 2000 */
  probeIntervalMs?: number;
  probeTimeoutMs?: number;
  backoff?: BackoffOptions;
  clock?: Clock;
  logger?: Logger;
}

/**
 * The control side of a node in one object: a {@link CoordinatorClient} whose reports take
 * peers from the tunnels and origins from an {@link OriginProber}, and the prober kept on
 * the origins the coordinator declares. Listen to `client` for 'routes' and 'membership'.
 *
 *   const control = new NodeControl({ ... });
 *   control.client.on('routes', (t) => routeTable.update(t.routes, t.version));
 *   control.start();
 */
export class NodeControl {
  readonly client: CoordinatorClient;
  readonly prober: OriginProber;

  constructor(options: NodeControlOptions) {
    const logger = options.logger ?? silentLogger();
    const clock = options.clock ?? systemClock;
    this.prober = new OriginProber({
      dialer: options.dialer,
      intervalMs: options.probeIntervalMs ?? 5000,
      timeoutMs: options.probeTimeoutMs ?? 2000,
      clock,
      logger,
    });
    this.client = new CoordinatorClient({
      address: options.address,
      token: options.token,
      node: options.node,
      measurements: { peers: options.peers, origins: () => this.prober.origins() },
      clock,
      logger,
      ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    });
    this.client.on('membership', (m: MembershipSnapshot) => this.prober.setOrigins(m.origins));
  }

  start(): void {
    this.prober.start();
    this.client.start();
  }

  /** Leaves the coordinator gracefully and stops probing. Idempotent. */
  async close(): Promise<void> {
    await Promise.all([this.client.close(), this.prober.close()]);
  }

  /** Drops everything at once. Idempotent. */
  destroy(err?: Error): void {
    this.client.destroy(err);
    this.prober.destroy();
  }
}
