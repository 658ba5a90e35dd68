import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  generatedSha256,
  loadWorld,
  startMesh,
  startWorld,
  type WorldHandle,
} from '../src/index.ts';

// The seed world with the real relaymesh on it: coordinator and three nodes as processes,
// every node behind its region's egress proxy. Needs the compiled CLI (`tsc -b`).
const CLI = fileURLToPath(
  new URL('../../../packages/relay-node/dist/cli/main.js', import.meta.url),
);
const TOKEN = 'world-mesh-test-cluster-token-0123456789';
const SIZE = 8 * 1024 * 1024;

let handle: WorldHandle | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
});

interface Download {
  status: number;
  sha256: string;
  path: string;
  ms: number;
}

/** GET of the Tokyo file from Chengdu, entering the mesh at `port` (a node's HTTP entry). */
async function fetchFromChengdu(w: WorldHandle, port: number): Promise<Download> {
  const started = performance.now();
  const socket = await w.dialerFor('cn-chengdu').dial({ host: '127.0.0.1', port });
  return new Promise((resolve, reject) => {
    const headers = { host: 'files.tokyo.example' };
    const req = http.request({ createConnection: () => socket, path: '/f', headers }, (res) => {
      const hash = createHash('sha256');
      res.on('data', (d: Buffer) => hash.update(d));
      res.on('end', () => {
        socket.destroy();
        resolve({
          status: res.statusCode ?? 0,
          sha256: hash.digest('hex'),
          path: String(res.headers['x-relaymesh-path'] ?? ''),
          ms: performance.now() - started,
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('seed world with the real mesh', () => {
  // Nine processes on two shared cores: give it more than the unit project's 20 s.
  it('a Chengdu client gets the Tokyo file through the Beijing entry, far above the direct rate', {
    timeout: 60_000,
  }, async () => {
    expect(existsSync(CLI), `${CLI} missing: run pnpm exec tsc -b`).toBe(true);
    const t0 = performance.now();
    handle = await startWorld(loadWorld('seed'), { fileSizeBytes: SIZE });
    const t1 = performance.now();
    const mesh = await startMesh(handle, {
      cli: CLI,
      token: TOKEN,
      nodeArgs: ['--debug-headers'],
      nodeEnv: { RELAYMESH_WORLD_MARK: 'seed' },
    });
    expect(mesh.nodes.map((n) => n.id)).toEqual(['bj-1', 'hk-1', 'tokyo-1']);
    // nodeEnv reaches every node (the demo gives them glibc's tunable this way).
    if (process.platform === 'linux') {
      for (const n of mesh.nodes) {
        const env = readFileSync(`/proc/${n.process.pid}/environ`, 'utf8').split('\0');
        expect(env).toContain('RELAYMESH_WORLD_MARK=seed');
      }
    }
    const t2 = performance.now();
    const files = handle.originAddress('files');
    const expected = await generatedSha256(files.contentSeed, SIZE);

    // Routes arrive after the coordinator's warm-up: retry a bounded number of times.
    let got: Download | undefined;
    for (let i = 0; i < 20 && got?.status !== 200; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 500));
      got = await fetchFromChengdu(handle, mesh.node('bj-1').httpPort);
    }
    const t3 = performance.now();
    const mbps = (SIZE * 8) / ((got?.ms ?? 1) / 1000) / 1e6;
    console.log(
      `seed mesh: ${got?.status} via ${got?.path} in ${got?.ms.toFixed(0)} ms (${mbps.toFixed(1)} Mbit/s)`,
    );
    expect(got?.status).toBe(200);
    expect(got?.sha256).toBe(expected);
    expect(got?.path.startsWith('bj-1')).toBe(true);
    // Direct on the lossy link this would be ~0.24 Mbit/s (30 KB/s).
    expect(mbps).toBeGreaterThan(10);

    const pids = handle.pids();
    await handle.close();
    console.log(
      `phases: world ${(t1 - t0).toFixed(0)} mesh ${(t2 - t1).toFixed(0)} fetch ${(t3 - t2).toFixed(0)} close ${(performance.now() - t3).toFixed(0)} ms`,
    );
    expect(
      pids.filter((pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      }),
    ).toEqual([]);
  });
});
