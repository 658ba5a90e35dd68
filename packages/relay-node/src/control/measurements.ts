/** A node's current view of one peer tunnel (from the tunnel's PING samples). */
export interface PeerMeasurement {
  peerId: string;
  /** Smoothed RTT of the tunnel. */
  srttMs: number;
  jitterMs: number;
  /**
   * Least RTT of the last few PINGs (0 = unknown): the link's base RTT, which the
   * coordinator routes on; SRTT also averages in queueing and per-packet jitter.
   */
  baseRttMs: number;
  /** False when the tunnel is down: the coordinator drops the link at once. */
  reachable: boolean;
  /**
   * Bytes per second the link carried from the peer to this node in the newest capacity
   * probes (median of 3); absent or 0 when unknown (no probe yet, or an older peer).
   */
  capacityBps?: number;
  /** The highest capacity sample of the last 10 minutes; absent or 0 when unknown. */
  peakCapacityBps?: number;
}

/** A node's current view of one origin upstream (from the origin prober). */
export interface OriginMeasurement {
  origin: string;
  /** The upstream URL as declared, e.g. `tcp://127.0.0.1:22`. */
  upstream: string;
  rttMs: number;
  reachable: boolean;
}

/**
 * Where the coordinator client takes each report from. Called once per report period;
 * must be cheap and must not throw (a throw skips that report and is logged).
 */
export interface MeasurementSource {
  peers(): PeerMeasurement[];
  origins(): OriginMeasurement[];
}
