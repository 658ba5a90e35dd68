#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { type Mesh, startMesh } from '../runner/mesh.ts';
import { startWorld } from '../runner/world-runner.ts';
import { loadWorld } from '../world/loader.ts';

const USAGE = `usage: world.js [NAME|FILE] [--in-process] [--shared] [--file-size BYTES] [--mesh CLI]
  NAME|FILE    world name (worlds/NAME.yaml) or file; default seed
  --mesh CLI   also start relaymesh (coordinator + nodes) from the compiled CLI main.js`;

// Runs a world from the command line until SIGINT/SIGTERM (for the demo and by hand) and
// prints one JSON line: egress proxy per region, control ports, origins, nodes (with their
// ports when --mesh is given).
async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      'in-process': { type: 'boolean' },
      shared: { type: 'boolean' },
      'file-size': { type: 'string' },
      mesh: { type: 'string' },
      help: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const world = loadWorld(positionals[0] ?? 'seed');
  const handle = await startWorld(world, {
    inProcess: values['in-process'] === true,
    egress: values.shared ? 'shared' : 'per-region',
    ...(values['file-size'] ? { fileSizeBytes: Number(values['file-size']) } : {}),
  });
  const stop = () => {
    handle.close().finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let mesh: Mesh | undefined;
  if (values.mesh) {
    const token = randomBytes(24).toString('hex');
    mesh = await startMesh(handle, { cli: values.mesh, token }).catch(async (err: unknown) => {
      await handle.close();
      throw err;
    });
  }
  const summary = {
    ready: true,
    world: world.name,
    egressProxies: Object.fromEntries(world.regions.map((r) => [r.id, handle.proxyUrlFor(r.id)])),
    controlPorts: handle.proxies().map((p) => ({ regions: p.regions, controlPort: p.controlPort })),
    origins: handle.origins.map((o) => ({
      name: o.name,
      region: o.region,
      kind: o.kind,
      url: o.url,
      hosts: o.hosts,
    })),
    coordinator: mesh?.coordinatorAddress,
    nodes: mesh
      ? mesh.nodes.map(({ id, region, tunnelPort, httpPort }) => ({
          id,
          region,
          tunnelPort,
          httpPort,
        }))
      : world.nodes,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'fatal', msg: 'world failed to start', err: String(err) })}\n`,
  );
  process.exit(1);
});
