import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RelayError } from '@relaymesh/shared';
import type { WorldNode } from '../world/types.ts';
import { logLineReady, type WorldProcess } from './world-process.ts';
import type { WorldHandle } from './world-runner.ts';

export interface StartMeshOptions {
  /** Path of the compiled `relaymesh` CLI (packages/relay-node/dist/cli/main.js). */
  cli: string;
  /** Cluster token (at least 32 characters). */
  token: string;
  /** Where the coordinator runs. @default the first origin's region, else the first region */
  coordinatorRegion?: string;
  /** Coordinator `--warmup-ms`. @default 1000 */
  warmupMs?: number;
  /** Coordinator `--lease-ms`. @default the CLI's default */
  leaseMs?: number;
  /** Coordinator `--settle-rounds`. @default the CLI's default */
  settleRounds?: number;
  /** Extra arguments for every `relaymesh node`. @default [] */
  nodeArgs?: string[];
  /** Extra environment for every `relaymesh node` (e.g. GLIBC_TUNABLES). @default {} */
  nodeEnv?: Record<string, string>;
  /** `--log-level` of the nodes (the coordinator needs `info` for its ready line). @default 'warn' */
  logLevel?: string;
  /** Ready deadline of each process. @default 15000 */
  readyTimeoutMs?: number;
}

/** Where a relay node of the mesh listens (from its ready line). */
export interface MeshNode {
  id: string;
  region: string;
  tunnelPort: number;
  /** HTTP entry for clients. */
  httpPort: number;
  process: WorldProcess;
}

export interface Mesh {
  coordinator: WorldProcess;
  /** `127.0.0.1:PORT` of the coordinator's gRPC listener. */
  coordinatorAddress: string;
  nodes: MeshNode[];
  node(id: string): MeshNode;
}

/**
 * Starts the real relaymesh on a running world: `relaymesh coordinator` (cluster config
 * written from the world's origins) and one `relaymesh node` per world node, each with
 * `--egress-proxy` of its region, tunnel and HTTP listeners on port 0. All of them stop
 * with the world (`handle.close()`).
 *
 * @throws ERR_WORLD_PROCESS when one of them does not become ready; what did start stays
 *   in the handle and stops with `handle.close()`.
 */
export async function startMesh(handle: WorldHandle, options: StartMeshOptions): Promise<Mesh> {
  const world = handle.world;
  const dir = mkdtempSync(path.join(tmpdir(), `relaymesh-${world.name}-`));
  handle.onClose(() => rmSync(dir, { recursive: true, force: true }));
  const config = path.join(dir, 'cluster.yaml');
  // JSON is YAML: the coordinator reads it as its cluster config.
  writeFileSync(config, JSON.stringify({ token: options.token, origins: handle.clusterOrigins() }));
  const region =
    options.coordinatorRegion ?? world.origins[0]?.region ?? world.regions[0]?.id ?? '';
  const readyTimeoutMs = options.readyTimeoutMs ?? 15_000;
  const coordinator = await handle.startProcess({
    name: 'coordinator',
    region,
    command: process.execPath,
    args: [
      options.cli,
      'coordinator',
      ...['--config', config, '--grpc-listen', '127.0.0.1:0', '--log-level', 'info'],
      ...['--warmup-ms', String(options.warmupMs ?? 1000)],
      ...(options.leaseMs === undefined ? [] : ['--lease-ms', String(options.leaseMs)]),
      ...(options.settleRounds === undefined
        ? []
        : ['--settle-rounds', String(options.settleRounds)]),
    ],
    env: { RELAYMESH_TOKEN: options.token },
    parseReady: logLineReady('coordinator listening'),
    readyTimeoutMs,
  });
  const coordinatorAddress = `127.0.0.1:${coordinator.ready.ports[0]}`;
  // Nodes are independent once the coordinator is up: start them together.
  const started = await Promise.allSettled(
    world.nodes.map((n) => startNode(handle, n, coordinatorAddress, options, readyTimeoutMs)),
  );
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const nodes = started.map((r) => (r as PromiseFulfilledResult<MeshNode>).value);
  return {
    coordinator,
    coordinatorAddress,
    nodes,
    node(id) {
      const found = nodes.find((x) => x.id === id);
      if (!found) throw new RelayError('ERR_WORLD_CONFIG', `mesh has no node ${id}`);
      return found;
    },
  };
}

async function startNode(
  handle: WorldHandle,
  n: WorldNode,
  coordinatorAddress: string,
  options: StartMeshOptions,
  readyTimeoutMs: number,
): Promise<MeshNode> {
  const p = await handle.startProcess({
    name: n.id,
    region: n.region,
    command: process.execPath,
    args: [
      options.cli,
      'node',
      ...['--id', n.id, '--region', n.region, '--coordinator', coordinatorAddress],
      ...['--tunnel-listen', '127.0.0.1:0', '--http-listen', '127.0.0.1:0'],
      ...['--egress-proxy', handle.proxyUrlFor(n.region)],
      ...['--log-level', options.logLevel ?? 'warn'],
      ...(options.nodeArgs ?? []),
    ],
    // The token goes through the environment, never on a command line others can read.
    env: { ...options.nodeEnv, RELAYMESH_TOKEN: options.token },
    readyTimeoutMs,
  });
  const info = p.ready.info as { tunnelPort?: number; httpPort?: number };
  return {
    id: n.id,
    region: n.region,
    tunnelPort: info.tunnelPort ?? 0,
    httpPort: info.httpPort ?? 0,
    process: p,
  };
}
