import type { Command } from 'commander';
import { type NodesReport, queryNodes } from '../control/queries.ts';
import { failCommand, requireToken } from './coordinator-command.ts';
import { renderTable } from './routes-command.ts';

interface NodesFlags {
  coordinator: string;
  token?: string;
  json?: boolean;
  timeoutMs: string;
}

function renderNodes(report: NodesReport): string {
  const nodes = renderTable(
    ['ID', 'REGION', 'STATUS', 'ADVERTISE', 'HTTP'],
    report.nodes.map((n) => [n.id, n.region, n.status, n.advertise, n.httpAdvertise ?? '-']),
  );
  const links = renderTable(
    ['FROM', 'TO', 'RTT_MS'],
    report.links.map((l) => [l.from, l.to, l.rttMs.toFixed(1)]),
  );
  const origins = renderTable(
    ['NODE', 'ORIGIN', 'RTT_MS'],
    report.origins.map((o) => [o.node, o.origin, o.rttMs.toFixed(1)]),
  );
  return `${nodes}\n\nLinks (smoothed RTT)\n${links}\n\nOrigin legs\n${origins}`;
}

/** `relaymesh nodes --coordinator HOST:PORT --token T [--json]` */
export function registerNodesCommand(program: Command): void {
  program
    .command('nodes')
    .description('show nodes, the measured link matrix and origin legs')
    .requiredOption('--coordinator <host:port>', 'coordinator gRPC address')
    .option('--token <token>', 'cluster token (default: RELAYMESH_TOKEN)')
    .option('--json', 'machine-readable output')
    .option('--timeout-ms <ms>', 'give up after this long', '5000')
    .action(async (flags: NodesFlags) => {
      try {
        const report = await queryNodes({
          address: flags.coordinator,
          token: requireToken(flags.token),
          timeoutMs: Number(flags.timeoutMs) || 5000,
        });
        process.stdout.write(`${flags.json ? JSON.stringify(report) : renderNodes(report)}\n`);
      } catch (err) {
        failCommand('nodes', err);
      }
    });
}
