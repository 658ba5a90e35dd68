import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpConnectDialer } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { loadWorld, logLineReady, startWorld, type WorldHandle } from '../src/index.ts';

// The real `relaymesh coordinator`, plugged into a world through a process spec. It needs
// the compiled CLI (the root `pnpm test` runs `tsc -b` first).
const CLI = fileURLToPath(
  new URL('../../../packages/relay-node/dist/cli/main.js', import.meta.url),
);
const TOKEN = 'world-test-cluster-token-0123456789';

let handle: WorldHandle | undefined;
let dir: string | undefined;
afterEach(async () => {
  await handle?.close();
  handle = undefined;
  if (dir) rmSync(dir, { recursive: true });
  dir = undefined;
});

describe('world with the real coordinator', () => {
  it('starts relaymesh coordinator from a spec, reaches it through the links, stops it', async () => {
    expect(existsSync(CLI), `${CLI} missing: run pnpm exec tsc -b`).toBe(true);
    handle = await startWorld(loadWorld('seed'), { inProcess: true, fileSizeBytes: 4096 });
    const origins = handle.clusterOrigins();
    expect(origins.map((o) => o.name)).toEqual(['files', 'echo', 'tcp-echo']);
    expect(origins[2]?.upstreams[0]).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);

    dir = mkdtempSync(path.join(tmpdir(), 'world-coord-'));
    const config = path.join(dir, 'cluster.yaml');
    writeFileSync(config, JSON.stringify({ token: TOKEN, origins }));
    const coordinator = await handle.startProcess({
      name: 'coordinator',
      region: 'ap-northeast-1',
      command: process.execPath,
      args: [CLI, 'coordinator', '--config', config, '--grpc-listen', '127.0.0.1:0'],
      parseReady: logLineReady('coordinator listening'),
      readyTimeoutMs: 15_000,
    });
    const port = coordinator.ready.ports[0] ?? 0;
    expect(port).toBeGreaterThan(0);

    // A node in Beijing reaches the coordinator in Tokyo over the 84 ms link.
    const t = performance.now();
    const socket = await new HttpConnectDialer(handle.proxyUrlFor('cn-north-1')).dial({
      host: '127.0.0.1',
      port,
    });
    expect(performance.now() - t).toBeGreaterThan(84 * 0.95);
    socket.destroy();

    await handle.close();
    expect(coordinator.exited).toBe(true);
  });
});
