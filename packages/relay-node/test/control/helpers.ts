import { Writable } from 'node:stream';
import { Coordinator, type CoordinatorOptions } from '@relaymesh/coordinator';
import { createRootLogger, type Logger, parseClusterConfig } from '@relaymesh/shared';
import type {
  MeasurementSource,
  OriginMeasurement,
  PeerMeasurement,
} from '../../src/control/index.ts';

export const TOKEN = 'test-cluster-token-0123456789';

export const CONFIG = parseClusterConfig(`
token: ${TOKEN}
origins:
  - name: tokyo-files
    hosts: [files.example.test]
    upstreams: ["http://127.0.0.1:9"]
`);

/** Polls `fn` every 20 ms until it returns a truthy value; fails after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | undefined | false,
  timeoutMs = 8000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A logger whose JSON lines land in `lines`. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: createRootLogger({ name: 'test', level: 'debug', destination }), lines };
}

/** A measurement source the test edits directly. */
export class FixedMeasurements implements MeasurementSource {
  peerMap = new Map<string, PeerMeasurement>();
  originList: OriginMeasurement[] = [];

  setPeer(peerId: string, srttMs: number, reachable = true): void {
    this.peerMap.set(peerId, { peerId, srttMs, jitterMs: 0, baseRttMs: srttMs, reachable });
  }

  peers(): PeerMeasurement[] {
    return [...this.peerMap.values()];
  }

  origins(): OriginMeasurement[] {
    return this.originList;
  }
}

export async function startCoordinator(
  options: Partial<CoordinatorOptions> = {},
): Promise<Coordinator> {
  const c = new Coordinator({
    config: CONFIG,
    listen: '127.0.0.1:0',
    heartbeatIntervalMs: 100,
    reportIntervalMs: 100,
    recomputeIntervalMs: 50,
    warmupMs: 0,
    ...options,
  });
  await c.start();
  return c;
}
