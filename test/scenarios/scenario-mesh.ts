import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { download } from '@relaymesh/relay-node';
import { DirectDialer } from '@relaymesh/shared';
import {
  type ClusterOrigin,
  logLineReady,
  type WorldHandle,
  type WorldProcess,
} from '@relaymesh/world';
import { MESH_CLI, routePath, sleep, TOKEN } from './helpers.ts';

// The real coordinator and nodes on a world, like the world's startMesh, but with a cluster
// config the scenario writes (extra origins, two upstreams) and a fast control loop.
export const LINE4 = fileURLToPath(new URL('./worlds/line4.yaml', import.meta.url));
const ORIGIN_BIN = fileURLToPath(new URL('../world/dist/bin/origin.js', import.meta.url));

export interface ScenarioNode {
  id: string;
  region: string;
  httpPort: number;
  process: WorldProcess;
}

export interface ScenarioMesh {
  coordinatorAddress: string;
  node(id: string): ScenarioNode;
}

/** Starts `relaymesh coordinator` with `origins` and every world node (with `nodeArgs`). */
export async function startScenarioMesh(
  handle: WorldHandle,
  origins: ClusterOrigin[],
  nodeArgs: string[] = ['--debug-headers'],
): Promise<ScenarioMesh> {
  const dir = mkdtempSync(path.join(tmpdir(), 'relaymesh-scenario-'));
  handle.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'cluster.yaml');
  writeFileSync(config, JSON.stringify({ token: TOKEN, origins }));
  const env = { RELAYMESH_TOKEN: TOKEN };
  const coordinator = await handle.startProcess({
    name: 'coordinator',
    region: handle.world.origins[0]?.region ?? '',
    command: process.execPath,
    args: [
      ...[MESH_CLI, 'coordinator', '--config', config, '--grpc-listen', '127.0.0.1:0'],
      ...['--log-level', 'info', '--warmup-ms', '500'],
      ...['--report-interval-ms', '300', '--recompute-interval-ms', '300'],
    ],
    env,
    parseReady: logLineReady('coordinator listening'),
    readyTimeoutMs: 20_000,
  });
  const coordinatorAddress = `127.0.0.1:${coordinator.ready.ports[0]}`;
  const nodes = await Promise.all(
    handle.world.nodes.map(async (n): Promise<ScenarioNode> => {
      const p = await handle.startProcess({
        name: n.id,
        region: n.region,
        command: process.execPath,
        args: [
          ...[MESH_CLI, 'node', '--id', n.id, '--region', n.region],
          ...['--coordinator', coordinatorAddress, '--log-level', 'warn'],
          ...['--tunnel-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'],
          ...['--egress-proxy', handle.proxyUrlFor(n.region), ...nodeArgs],
        ],
        env,
        readyTimeoutMs: 20_000,
      });
      const info = p.ready.info as { httpPort?: number };
      return { id: n.id, region: n.region, httpPort: info.httpPort ?? 0, process: p };
    }),
  );
  return {
    coordinatorAddress,
    node(id) {
      const found = nodes.find((x) => x.id === id);
      if (!found) throw new Error(`no node ${id}`);
      return found;
    },
  };
}

/** An extra origin server process of the world (dist/bin/origin.js) in `region`. */
export async function startOriginProcess(
  handle: WorldHandle,
  name: string,
  region: string,
  config: { kind: 'file' | 'http' | 'tcp'; sizeBytes?: number; contentSeed?: number },
): Promise<{ port: number; process: WorldProcess }> {
  const p = await handle.startProcess({
    name,
    region,
    command: process.execPath,
    args: [ORIGIN_BIN, JSON.stringify(config), '--exit-with-parent'],
  });
  return { port: p.ready.ports[0] ?? 0, process: p };
}

/**
 * Waits until the coordinator reports `path` for (path[0], origin) and a request through the
 * entry's HTTP port (`host` names the origin) carries it in x-relaymesh-path: right after a
 * start, the first routes come from the first measurements and may still change.
 */
export async function waitForPath(
  coordinator: string,
  entry: { httpPort: number },
  origin: string,
  host: string,
  path: string[],
  timeoutMs: number,
): Promise<void> {
  const want = path.join(',');
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
    const reported = (await routePath(coordinator, path[0] ?? '', origin))?.join(',');
    if (reported === want) {
      const r = await download({
        dialer: new DirectDialer(),
        port: entry.httpPort,
        hostHeader: host,
        path: '/which-path',
        range: { start: 0, end: 0 }, // a file origin sends one byte, not the whole file
        timeoutMs: 5000,
      }).catch(() => undefined);
      last = r?.path.join(',') ?? '';
      if (last === want) return;
    } else last = `routes: ${reported}`;
    await sleep(300);
  }
  throw new Error(`path ${want} to ${origin} not in use within ${timeoutMs} ms (last: ${last})`);
}
