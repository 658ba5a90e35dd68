/**
 * The coordinator under test for coordinator-load.bench.ts, in its own process so its CPU
 * and memory are its own. Speaks over the fork IPC channel:
 *   -> { type: 'listening', address }          once bound
 *   <- { type: 'sample' }  -> { type: 'sample', cpuUs, rss, routeVersion }
 *   <- { type: 'stop' }    -> exits after close
 */
import { parseClusterConfig } from '@relaymesh/shared';
import { Coordinator } from '../src/index.ts';

const TOKEN = process.env.BENCH_TOKEN ?? 'bench-token-0123456789abcdef';
const ORIGINS = Number(process.env.BENCH_ORIGINS ?? 5);
const origins = Array.from({ length: ORIGINS }, (_, i) => ({
  name: `origin-${i}`,
  hosts: [`o${i}.bench.test`],
  upstreams: [`tcp://127.0.0.1:${10_000 + i}`],
}));
const config = parseClusterConfig(JSON.stringify({ token: TOKEN, origins }));
const coordinator = new Coordinator({
  config,
  listen: '127.0.0.1:0',
  warmupMs: 0,
  maxNodes: 10_000,
});
const address = await coordinator.start();
process.send!({ type: 'listening', address });
process.on('message', (msg: { type: string }) => {
  if (msg.type === 'sample') {
    const cpu = process.cpuUsage();
    process.send!({
      type: 'sample',
      cpuUs: cpu.user + cpu.system,
      rss: process.memoryUsage().rss,
      routeVersion: coordinator.routeVersion,
    });
  } else if (msg.type === 'stop') {
    void coordinator.close(2000).then(() => process.exit(0));
  }
});
