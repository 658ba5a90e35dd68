import { createDialer } from '@relaymesh/shared';
import type { Command } from 'commander';
import { queryNodes } from '../control/queries.ts';
import { measureNearest, type NearestEntry } from '../node/nearest.ts';
import { failCommand, requireToken } from './coordinator-command.ts';
import { renderTable } from './routes-command.ts';

interface NearestFlags {
  coordinator: string;
  token?: string;
  json?: boolean;
  egressProxy?: string;
  timeoutMs: string;
}

function render(entries: NearestEntry[]): string {
  return renderTable(
    ['ID', 'HTTP', 'CONNECT_MS'],
    entries.map((e) => [
      e.id,
      e.http,
      e.rttMs === null ? `- (${e.error ?? 'unreachable'})` : e.rttMs.toFixed(1),
    ]),
  );
}

/**
 * `relaymesh nearest --coordinator HOST:PORT --token T [--json] [--egress-proxy URL]`:
 * the up nodes that announced an HTTP entry, fastest TCP connect first (median of 3,
 * through the egress proxy when given, so the time includes the path to the entry).
 */
export function registerNearestCommand(program: Command): void {
  program
    .command('nearest')
    .description('rank the entry nodes by TCP connect time from here (median of 3)')
    .requiredOption('--coordinator <host:port>', 'coordinator gRPC address')
    .option('--token <token>', 'cluster token (default: RELAYMESH_TOKEN)')
    .option('--json', 'machine-readable output')
    .option('--egress-proxy <url>', 'connect through this HTTP CONNECT proxy')
    .option(
      '--timeout-ms <ms>',
      'coordinator call and each connect give up after this long',
      '2000',
    )
    .action(async (flags: NearestFlags) => {
      try {
        const timeoutMs = Number(flags.timeoutMs) || 2000;
        const dialer = createDialer({ egressProxy: flags.egressProxy });
        const report = await queryNodes({
          address: flags.coordinator,
          token: requireToken(flags.token),
          timeoutMs: Math.max(timeoutMs, 5000),
        });
        const candidates = report.nodes
          .filter((n) => n.status === 'up' && n.httpAdvertise !== undefined)
          .map((n) => ({ id: n.id, http: n.httpAdvertise as string }));
        const entries = await measureNearest(candidates, { dialer, timeoutMs });
        process.stdout.write(`${flags.json ? JSON.stringify({ entries }) : render(entries)}\n`);
      } catch (err) {
        failCommand('nearest', err);
      }
    });
}
