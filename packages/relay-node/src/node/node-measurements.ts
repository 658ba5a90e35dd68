import { type Clock, systemClock } from '@relaymesh/shared';
import type {
  MeasurementSource,
  OriginMeasurement,
  PeerMeasurement,
} from '../control/measurements.ts';
import type { OriginProber } from '../control/origin-prober.ts';
import type { CapacityView } from './capacity-prober.ts';
import type { PeerManager } from './peer-manager.ts';

export interface NodeMeasurementsOptions {
  peers: PeerManager;
  prober: OriginProber;
  /** Link capacity estimates per peer (capacity probes); none reported when absent. */
  capacity?: (peerId: string) => CapacityView | undefined;
  /**
   * A link is reachable only while its newest RTT sample is at most this old: a tunnel
   * that is "up" but no longer answers PINGs must leave the routes before the mux
   * declares it dead. @default 15000 (the mux deadTimeoutMs)
   */
  freshMs?: number;
  clock?: Clock;
}

/**
 * The node's {@link MeasurementSource}: peer links from each tunnel's mux RTT estimator
 * (srtt, base RTT and jitter over the last 6 PINGs) and capacity probes, origin legs from the {@link OriginProber}. Every peer in the
 * membership is reported, unreachable ones too, so the coordinator drops their links at
 * once instead of waiting for a lease.
 */
export class NodeMeasurements implements MeasurementSource {
  readonly #peers: PeerManager;
  readonly #prober: OriginProber;
  readonly #capacity: NodeMeasurementsOptions['capacity'];
  readonly #freshMs: number;
  readonly #clock: Clock;

  constructor(options: NodeMeasurementsOptions) {
    this.#peers = options.peers;
    this.#prober = options.prober;
    this.#capacity = options.capacity;
    this.#freshMs = options.freshMs ?? 15_000;
    this.#clock = options.clock ?? systemClock;
  }

  peers(): PeerMeasurement[] {
    const ids = new Set([...this.#peers.knownPeers, ...this.#peers.connectedPeers]);
    const now = this.#clock.now();
    return [...ids].sort().map((id) => {
      const v = this.#peers.view(id);
      const fresh = v.lastRttAt !== undefined && now - v.lastRttAt <= this.#freshMs;
      const m: PeerMeasurement = {
        peerId: id,
        srttMs: v.srttMs ?? 0,
        jitterMs: v.jitterMs ?? 0,
        baseRttMs: v.baseRttMs ?? 0,
        reachable: v.up && fresh && v.srttMs !== undefined,
      };
      const c = this.#capacity?.(id);
      if (c !== undefined) {
        m.capacityBps = Math.round(c.currentBps);
        m.peakCapacityBps = Math.round(c.peakBps);
      }
      return m;
    });
  }

  origins(): OriginMeasurement[] {
    return this.#prober.origins();
  }
}
