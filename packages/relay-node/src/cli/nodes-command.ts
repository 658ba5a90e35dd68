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

/** Most nodes shown as an RTT grid; beyond that a grid no longer fits a terminal. */
const GRID_MAX_NODES = 12;

/** Links as a FROM x TO grid of smoothed RTTs ('-' = not measured), or a list when large. */
function renderLinks(report: NodesReport): string {
  const ids = report.nodes.filter((n) => n.status === 'up').map((n) => n.id);
  if (ids.length > GRID_MAX_NODES) {
    return renderTable(
      ['FROM', 'TO', 'RTT_MS'],
      report.links.map((l) => [l.from, l.to, l.rttMs.toFixed(1)]),
    );
  }
  const rtt = new Map(report.links.map((l) => [`${l.from} ${l.to}`, l.rttMs.toFixed(1)]));
  return renderTable(
    ['FROM \\ TO', ...ids],
    ids.map((from) => [
      from,
      ...ids.map((to) => (from === to ? '.' : (rtt.get(`${from} ${to}`) ?? '-'))),
    ]),
  );
}

function renderNodes(report: NodesReport): string {
  const nodes = renderTable(
    ['ID', 'REGION', 'STATUS', 'ADVERTISE', 'HTTP'],
    report.nodes.map((n) => [n.id, n.region, n.status, n.advertise, n.httpAdvertise ?? '-']),
  );
  const links = renderLinks(report);
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
