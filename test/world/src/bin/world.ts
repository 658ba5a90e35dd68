#!/usr/bin/env node
import { startWorld } from '../runner/world-runner.ts';
import { loadWorld } from '../world/loader.ts';

// Runs a world from the command line until SIGINT/SIGTERM (for the demo and by hand):
//   node dist/bin/world.js seed [--in-process] [--shared] [--file-size BYTES]
// Prints one JSON line: proxies (per region), control ports, origins.
async function main(argv: string[]): Promise<void> {
  const name = argv.find((a) => !a.startsWith('--')) ?? 'seed';
  const sizeAt = argv.indexOf('--file-size');
  const world = loadWorld(name);
  const handle = await startWorld(world, {
    inProcess: argv.includes('--in-process'),
    egress: argv.includes('--shared') ? 'shared' : 'per-region',
    ...(sizeAt >= 0 ? { fileSizeBytes: Number(argv[sizeAt + 1]) } : {}),
  });
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
    })),
    nodes: world.nodes,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  const stop = () => {
    handle.close().finally(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(
    `${JSON.stringify({ level: 'fatal', msg: 'world failed to start', err: String(err) })}\n`,
  );
  process.exit(1);
});
