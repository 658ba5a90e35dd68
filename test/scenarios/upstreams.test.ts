import { readFileSync } from 'node:fs';
import { download, rangeSha256 } from '@relaymesh/relay-node';
import { loadWorld, startWorld, type WorldHandle } from '@relaymesh/world';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, waitForRoutes } from './helpers.ts';
import { LINE4, startOriginProcess, startScenarioMesh } from './scenario-mesh.ts';

// Issue 5: an origin with two upstreams (two file servers with the same content in region
// origin-d); one is killed (SIGKILL) in the middle of a run of requests.
//
// What "requests keep succeeding" means here, precisely: every request that STARTS after the
// kill succeeds (206, bytes intact), because the exit tries the other upstream when a
// connect fails and marks the dead one down; a request that was IN FLIGHT on the killed
// upstream when it died may fail (its response was cut mid-way), so at most as many
// failures as there are concurrent clients, all of them in flight at the kill.
const SIZE = 4 * 1024 * 1024;
const SEED = 11;
const WORKERS = 4;
const PER_WORKER_AFTER = 25;
let handle: WorldHandle | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

/** Established TCP connections accepted on 127.0.0.1:`port` (from /proc/net/tcp). */
function establishedOn(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'latin1')
    .split('\n')
    .filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === local && f[3] === '01';
    }).length;
}

interface Outcome {
  startedAt: number;
  endedAt: number;
  ok: boolean;
  why?: string;
}

describe('two upstreams, one killed mid-run', () => {
  it('requests started after the kill all succeed on the other upstream', {
    timeout: 90_000,
  }, async () => {
    handle = await startWorld(loadWorld(LINE4), { fileSizeBytes: 1024 * 1024 });
    const w = handle;
    const ups = await Promise.all(
      ['up-1', 'up-2'].map((name) =>
        startOriginProcess(w, name, 'origin-d', {
          kind: 'file',
          sizeBytes: SIZE,
          contentSeed: SEED,
        }),
      ),
    );
    const mesh = await startScenarioMesh(w, [
      {
        name: 'pair',
        hosts: ['pair.d.example'],
        upstreams: ups.map((u) => `http://127.0.0.1:${u.port}`),
        healthCheck: { path: '/health' },
      },
    ]);
    await waitForRoutes(mesh.coordinatorAddress, [{ from: 'a-1', origin: 'pair' }], 30_000);
    const entry = mesh.node('a-1');
    const outcomes: Outcome[] = [];
    let killedAt = Number.POSITIVE_INFINITY;
    let connectionsAtKill = 0;

    const one = async (i: number): Promise<void> => {
      const start = (i * 65_536 * 3) % (SIZE - 262_144);
      const startedAt = performance.now();
      const r = await download({
        dialer: w.dialerFor('edge-a'),
        port: entry.httpPort,
        hostHeader: 'pair.d.example',
        range: { start, end: start + 262_143 },
        timeoutMs: 20_000,
      }).catch((err: Error) => err);
      const endedAt = performance.now();
      if (r instanceof Error) {
        outcomes.push({ startedAt, endedAt, ok: false, why: r.message });
        return;
      }
      const ok = r.status === 206 && r.sha256 === (await rangeSha256(SEED, start, start + 262_144));
      outcomes.push({ startedAt, endedAt, ok, why: `status ${r.status} ${r.error ?? ''}` });
    };
    const worker = async (k: number): Promise<void> => {
      let after = 0;
      for (let i = k; after < PER_WORKER_AFTER && i < 10_000; i += WORKERS) {
        await one(i);
        if (outcomes.length >= 40 && killedAt === Number.POSITIVE_INFINITY) {
          killedAt = performance.now();
          connectionsAtKill = establishedOn(ups[0]?.port ?? 0);
          ups[0]?.process.kill();
        }
        if (performance.now() > killedAt) after++;
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, (_, k) => worker(k)));

    const before = outcomes.filter((o) => o.endedAt < killedAt);
    const inFlight = outcomes.filter((o) => o.startedAt <= killedAt && o.endedAt >= killedAt);
    const after = outcomes.filter((o) => o.startedAt > killedAt);
    console.log(
      `upstream killed (${connectionsAtKill} connections open): ${before.length} before (${before.filter((o) => !o.ok).length} failed), ${inFlight.length} in flight (${inFlight.filter((o) => !o.ok).length} failed), ${after.length} after (${after.filter((o) => !o.ok).length} failed)`,
    );
    // The killed upstream was in use (the exit's pool held connections to it).
    expect(connectionsAtKill).toBeGreaterThan(0);
    expect(before.filter((o) => !o.ok)).toEqual([]);
    expect(after.length).toBeGreaterThanOrEqual(WORKERS * (PER_WORKER_AFTER - 1));
    expect(after.filter((o) => !o.ok)).toEqual([]);
    expect(inFlight.filter((o) => !o.ok).length).toBeLessThanOrEqual(WORKERS);

    const pids = w.pids();
    await w.close();
    expect(alive(pids)).toEqual([]);
  });
});
