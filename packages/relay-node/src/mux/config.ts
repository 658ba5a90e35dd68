import {
  DEFAULT_DATA_FRAME_SIZE,
  MAX_FRAME_PAYLOAD,
  MAX_WINDOW,
  RelayError,
} from '@relaymesh/shared';

/**
 * Protocol constant (docs/protocol.md §4): the credit every stream starts with in each
 * direction before either side has said anything. It is what lets an opener send data
 * right after its SYN, before the ACK (0-RTT open). A SYN/ACK advertises the sender's
 * actual initial window, which must be at least this.
 */
export const BASE_STREAM_WINDOW = 256 * 1024;

/**
 * Tunables of one mux Session. Every field has a default in {@link DEFAULT_MUX_CONFIG};
 * {@link resolveMuxConfig} merges and validates (the only place that does).
 */
export interface MuxConfig {
  /** Receive window advertised on SYN/ACK. Default 256 KiB; at least {@link BASE_STREAM_WINDOW}. */
  initialStreamWindow: number;
  /** Auto-tuning stops doubling a stream's receive window here. Default 16 MiB. */
  maxStreamWindow: number;
  /**
   * Auto-tuning stops growing a window whose bytes in flight would take longer than the
   * path's recent minimum RTT, plus a quarter of it, plus this many ms to drain at the
   * measured rate: the excess is queueing, not bandwidth (docs/protocol.md §4). Default 1 ms.
   */
  windowQueueBudgetMs: number;
  /** Cap on the sum of receive windows granted on one session. Default 256 MiB. */
  sessionCreditLimit: number;
  /**
   * Streams open at once (both directions together). Default 1024: with the 256 KiB
   * initial window that is exactly the default 256 MiB session credit limit, so every
   * admitted stream can get its window (more streams would be refused for memory anyway).
   */
  maxConcurrentStreams: number;
  /** Inbound streams admitted but not yet taken by a 'stream' listener. Default 256. */
  acceptBacklog: number;
  /** Largest DATA payload we send (round-robin quantum). Default 16 KiB, max 64 KiB. */
  dataFrameSize: number;
  /**
   * Bytes a stream may have handed to the scheduler but not yet to the transport; above
   * it the stream's writer waits. Default 256 KiB.
   */
  streamSendQueueBytes: number;
  /**
   * PING period; each answered PING is an RTT sample. Default 500 ms: a silent link is
   * found within 5 s (see deadTimeoutMs), and an RTT that doubles moves the smoothed
   * estimate (RFC 6298, 1/8 per sample) past the coordinator's hysteresis in a few
   * seconds, inside the 10 s rerouting target; a PING is 12 bytes each way.
   */
  keepAliveIntervalMs: number;
  /**
   * No frame at all from the peer for this long: ERR_MUX_KEEPALIVE_TIMEOUT. Default 3000 ms.
   * Checked on the keepalive tick, so a dead link is declared 3-3.5 s after its last
   * frame (under the 5 s failover target), while a live link, where both sides PING twice
   * a second, must hold back every frame for 3 s to be declared dead: a jitter spike of
   * 10 x RTT on a 300 ms link (docs/reliability.md has the argument and the test).
   */
  deadTimeoutMs: number;
  /** An opened stream not ACKed by the peer in this long fails with ERR_MUX_OPEN_TIMEOUT. Default 30000 ms. */
  openTimeoutMs: number;
  /** `session.ping()` rejects after this long. Default 10000 ms. */
  pingTimeoutMs: number;
  /** Upper bound on `close()` waiting for streams to finish. Default 30000 ms. */
  closeTimeoutMs: number;
  /** After GO_AWAY on a violation, how long the transport may flush before destroy. Default 1000 ms. */
  violationFlushMs: number;
}

export const DEFAULT_MUX_CONFIG: Readonly<MuxConfig> = Object.freeze({
  initialStreamWindow: BASE_STREAM_WINDOW,
  maxStreamWindow: 16 * 1024 * 1024,
  windowQueueBudgetMs: 1,
  sessionCreditLimit: 256 * 1024 * 1024,
  maxConcurrentStreams: 1024,
  acceptBacklog: 256,
  dataFrameSize: DEFAULT_DATA_FRAME_SIZE,
  streamSendQueueBytes: 256 * 1024,
  keepAliveIntervalMs: 500,
  deadTimeoutMs: 3000,
  openTimeoutMs: 30_000,
  pingTimeoutMs: 10_000,
  closeTimeoutMs: 30_000,
  violationFlushMs: 1000,
});

type Rule = readonly [min: number, max: number];

const RULES: Record<keyof MuxConfig, Rule> = {
  initialStreamWindow: [BASE_STREAM_WINDOW, MAX_WINDOW],
  maxStreamWindow: [BASE_STREAM_WINDOW, MAX_WINDOW],
  windowQueueBudgetMs: [0, 3_600_000],
  sessionCreditLimit: [BASE_STREAM_WINDOW, Number.MAX_SAFE_INTEGER],
  maxConcurrentStreams: [1, 1_000_000],
  acceptBacklog: [0, 1_000_000],
  dataFrameSize: [1, MAX_FRAME_PAYLOAD],
  streamSendQueueBytes: [1, MAX_WINDOW],
  keepAliveIntervalMs: [1, 3_600_000],
  deadTimeoutMs: [1, 3_600_000],
  openTimeoutMs: [1, 3_600_000],
  pingTimeoutMs: [1, 3_600_000],
  closeTimeoutMs: [0, 3_600_000],
  violationFlushMs: [0, 60_000],
};

function invalid(field: string, value: unknown, why: string): RelayError {
  return new RelayError('ERR_CONFIG_INVALID', `mux config ${field}=${String(value)}: ${why}`, {
    details: { field, value },
  });
}

/**
 * Merges `partial` over the defaults and validates the result.
 * @throws RelayError ERR_CONFIG_INVALID naming the first offending field.
 */
export function resolveMuxConfig(partial: Partial<MuxConfig> = {}): MuxConfig {
  const config: MuxConfig = { ...DEFAULT_MUX_CONFIG };
  for (const [key, value] of Object.entries(partial)) {
    if (value === undefined) continue;
    if (!(key in RULES)) throw invalid(key, value, 'unknown field');
    (config as unknown as Record<string, unknown>)[key] = value;
  }
  for (const key of Object.keys(RULES) as Array<keyof MuxConfig>) {
    const value = config[key];
    const [min, max] = RULES[key];
    if (!Number.isInteger(value)) throw invalid(key, value, 'must be an integer');
    if (value < min || value > max) throw invalid(key, value, `must be in [${min}, ${max}]`);
  }
  if (config.maxStreamWindow < config.initialStreamWindow) {
    throw invalid('maxStreamWindow', config.maxStreamWindow, 'must be >= initialStreamWindow');
  }
  if (config.deadTimeoutMs <= config.keepAliveIntervalMs) {
    throw invalid('deadTimeoutMs', config.deadTimeoutMs, 'must be > keepAliveIntervalMs');
  }
  return config;
}
