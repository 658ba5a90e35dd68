import { type Clock, isRelayError, RelayError, systemClock, WireCode } from '@relaymesh/shared';
import {
  DATA_PLANE_VERSION,
  decodeResponseHead,
  encodeOpenHeader,
  encodePrefixed,
  MAX_RESPONSE_HEAD_BYTES,
  type OpenHeader,
  probeOpenHeader,
  readPrefixed,
} from './open-header.ts';
import { resetStream } from './splice.ts';
import type { HopStream } from './types.ts';

/**
 * Capacity probe (docs/data-plane.md, kind 'probe'): node A opens a stream to its peer B,
 * B answers 200 and `bytes` bytes, and A times their arrival.
 *
 * ```
 *  A ── OPEN {kind:'probe', bytes:N, hops:[]} + FIN ──> B
 *  A <── RESPONSE HEAD 200 ── N zero bytes ── FIN ───── B
 * ```
 *
 * The sample is every byte A's session received from B between the probe's first and last
 * data byte, divided by that time: traffic of our own streams sharing the tunnel counts, so
 * a link busy with our downloads is not taken for a slow one.
 */

/** Bytes B sends per write; one shared zero buffer, never copied. */
const CHUNK = 16 * 1024;
const ZEROS = Buffer.alloc(CHUNK);

/**
 * B's side: answers a probe stream with 200 and `header.bytes` zero bytes, honouring
 * backpressure, then ends. Resolves when done or when the stream is closed or reset.
 */
export function serveProbe(stream: HopStream, header: OpenHeader): Promise<void> {
  const total = header.bytes ?? 0;
  stream.resume(); // A sends nothing after the header; drain its FIN
  return new Promise((resolve) => {
    let left = total;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      stream.off('drain', pump);
      stream.off('close', finish);
      resolve();
    };
    const pump = () => {
      while (!done && left > 0 && !stream.destroyed) {
        const n = Math.min(left, CHUNK);
        left -= n;
        if (!stream.write(n === CHUNK ? ZEROS : ZEROS.subarray(0, n))) return;
      }
      if (left === 0) {
        stream.end();
        finish();
      }
    };
    stream.on('drain', pump);
    stream.once('close', finish);
    if (!stream.write(encodePrefixed({ v: DATA_PLANE_VERSION, status: 200, headers: [] }))) return;
    pump();
  });
}

export interface ProbeOptions {
  /** A new stream to the peer (not yet written). */
  stream: HopStream;
  /** This node's id (the probe's path). */
  nodeId: string;
  id: string;
  /** @default 65536 */
  bytes?: number;
  /** Bytes received from the peer on the session so far (all streams). */
  sessionBytes: () => number;
  /** A probe not done by then yields what arrived so far and is reset. @default 4000 */
  timeoutMs?: number;
  clock?: Clock;
}

export interface ProbeResult {
  /** Bytes per second received from the peer over the measured interval. */
  bps: number;
  /** The probe's bytes all arrived (false: timed out, the sample is a lower bound). */
  complete: boolean;
  /** Session bytes counted, and over how long. */
  bytes: number;
  ms: number;
}

/**
 * A's side: runs one probe on `stream`. Rejects with the peer's refusal (an older peer
 * resets the unknown kind with BAD_OPEN_HEADER) or ERR_PROXY_BAD_OPEN_HEADER; resolves
 * with a sample otherwise, also on timeout (before or after the head: `complete` false).
 */
export async function runProbe(o: ProbeOptions): Promise<ProbeResult> {
  const clock = o.clock ?? systemClock;
  const bytes = o.bytes ?? 64 * 1024;
  const timeoutMs = o.timeoutMs ?? 4000;
  const { stream } = o;
  const startedAt = clock.now();
  const startBytes = o.sessionBytes();
  // Timed out (before or after the head): everything the session received since the
  // probe was sent, e.g. while it was stuck behind a queue on the link.
  const partial = (): ProbeResult => {
    const ms = Math.max(clock.now() - startedAt, 0.001);
    const counted = o.sessionBytes() - startBytes;
    return { bps: (counted * 1000) / ms, complete: false, bytes: counted, ms };
  };
  stream.on('error', () => {}); // reported through readPrefixed / 'close'
  stream.end(encodeOpenHeader(probeOpenHeader(o.id, o.nodeId, bytes)));
  let head: Buffer;
  try {
    head = await readPrefixed(stream, MAX_RESPONSE_HEAD_BYTES, timeoutMs, clock);
  } catch (err) {
    resetStream(stream, WireCode.CANCEL);
    if (!isRelayError(err, 'ERR_PROXY_HEAD_TIMEOUT')) throw err;
    return partial();
  }
  const status = decodeResponseHead(head).status;
  if (status !== 200) {
    resetStream(stream, WireCode.CANCEL);
    throw new RelayError('ERR_PROXY_BAD_OPEN_HEADER', `probe answered ${status}`);
  }
  return new Promise<ProbeResult>((resolve) => {
    let got = 0;
    let firstAt: number | undefined;
    let firstBytes = 0;
    let settled = false;
    const settle = (complete: boolean) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onClose);
      if (!complete || firstAt === undefined) {
        resetStream(stream, WireCode.CANCEL);
        resolve(partial());
        return;
      }
      const now = clock.now();
      const total = o.sessionBytes();
      // Most of the probe came in its first chunk: it arrived faster than we can time
      // (shapers and event loops deliver in bursts); credit it all to at least 1 ms.
      const timed = total - firstBytes >= bytes / 2;
      const ms = Math.max(now - firstAt, timed ? 0.001 : 1);
      const counted = timed ? total - firstBytes : bytes;
      resolve({ bps: (counted * 1000) / ms, complete: true, bytes: counted, ms });
    };
    const onData = (chunk: Buffer) => {
      if (firstAt === undefined) {
        firstAt = clock.now();
        // The bytes of this first chunk arrived at firstAt: not part of the interval.
        firstBytes = o.sessionBytes();
      }
      got += chunk.length;
    };
    const onEnd = () => settle(got >= bytes && firstAt !== undefined && got > 0);
    const onClose = () => settle(false);
    const timer = clock.setTimeout(
      () => settle(false),
      Math.max(0, timeoutMs - (clock.now() - startedAt)),
    );
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onClose);
  });
}
