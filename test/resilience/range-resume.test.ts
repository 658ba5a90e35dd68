import { createHash } from 'node:crypto';
import http from 'node:http';
import { queryRoutes } from '@relaymesh/relay-node';
import { generatedSha256, type OriginServer, startFileServer } from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cluster,
  type NodeProc,
  ORIGIN_HOST,
  startBlockingProxy,
  TOKEN,
  waitFor,
} from './helpers.ts';

// Issue 6, interrupted downloads: the world's file server (Range, ETag, known sha256)
// behind a mesh of real processes. The entry `a` cannot reach the origin itself; a
// download through it is paused mid-body, the node it runs through is killed (SIGKILL: no
// drain), and the entry must fetch the rest with a Range request over another path so
// that the client receives one intact body.

const SIZE = 48 * 1024 * 1024;
const SEED = 7;
const MiB = 1024 * 1024;

let cluster: Cluster;
let files: OriginServer;
const nodes = new Map<string, NodeProc>();

beforeAll(async () => {
  cluster = new Cluster();
  files = await startFileServer({ sizeBytes: SIZE, contentSeed: SEED });
  cluster.onClose(() => files.close());
  const proxy = await startBlockingProxy(files.port);
  cluster.onClose(() => proxy.close());
  await cluster.startCoordinator(files.port);
  const started = await Promise.all([
    cluster.startNode('a', ['--egress-proxy', proxy.url]),
    cluster.startNode('b'),
    cluster.startNode('c'),
  ]);
  for (const p of started) nodes.set(p.id, p);
  // Both b and c must be on a's routes: the resume needs a second path.
  await waitFor(
    async () => {
      try {
        const r = await queryRoutes({ address: cluster.coordinator, token: TOKEN }, { from: 'a' });
        const hops = new Set(
          r.routes.flatMap((x) => [x.path, ...x.alternates.map((y) => y.path)]).map((p) => p[1]),
        );
        return hops.has('b') && hops.has('c');
      } catch {
        return false;
      }
    },
    20_000,
    'routes from a through b and through c',
  );
}, 60_000);

afterAll(async () => {
  await cluster?.close();
});

interface Got {
  status: number;
  sha256: string;
  bytes: number;
  complete: boolean;
  path: string;
  killed: string | undefined;
}

/** Downloads the file through a; at `pauseAt` bytes pauses, kills the first hop, resumes. */
function downloadKillingFirstHop(pauseAt: number): Promise<Got> {
  const entry = nodes.get('a') as NodeProc;
  return new Promise((resolve, reject) => {
    const req = http.get(
      { port: entry.httpPort, host: '127.0.0.1', path: '/f', headers: { host: ORIGIN_HOST } },
      (res) => {
        const hash = createHash('sha256');
        const path = String(res.headers['x-relaymesh-path']);
        let bytes = 0;
        let killed: string | undefined;
        res.on('data', (d: Buffer) => {
          hash.update(d);
          bytes += d.length;
          if (killed !== undefined || bytes < pauseAt) return;
          killed = path.split(',')[1] ?? '';
          res.pause();
          const victim = nodes.get(killed);
          victim?.child.kill('SIGKILL');
          void (victim?.exited ?? Promise.resolve()).then(() => res.resume());
        });
        res.once('close', () =>
          resolve({
            status: res.statusCode ?? 0,
            sha256: hash.digest('hex'),
            bytes,
            complete: res.complete,
            path,
            killed,
          }),
        );
        res.on('error', () => {});
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('download timed out')));
    req.once('error', reject);
  });
}

describe('Range resume across a killed node', () => {
  it('the client gets one intact body (sha256 equal) after its path died mid-body', {
    timeout: 60_000,
  }, async () => {
    const expected = await generatedSha256(SEED, SIZE);
    const got = await downloadKillingFirstHop(8 * MiB);
    expect(got.killed === 'b' || got.killed === 'c').toBe(true);
    expect(got.status).toBe(200);
    expect(got.complete).toBe(true);
    expect(got.bytes).toBe(SIZE);
    expect(got.sha256).toBe(expected);
  });
});
