import type { Command } from 'commander';
import { queryRoutes, type RoutesReport } from '../control/queries.ts';
import { failCommand, requireToken } from './coordinator-command.ts';

interface RoutesFlags {
  coordinator: string;
  token?: string;
  from?: string;
  origin?: string;
  json?: boolean;
  timeoutMs: string;
}

const arrow = (path: readonly string[]) => path.join(' > ');

/** Renders rows as left-aligned columns. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function renderRoutes(report: RoutesReport): string {
  if (report.routes.length === 0)
    return 'no routes yet (nodes still reporting, or no node reaches an origin)';
  return renderTable(
    ['FROM', 'ORIGIN', 'RTT_MS', 'PATH', 'ALTERNATES'],
    report.routes.map((r) => [
      r.from,
      r.origin,
      r.rttMs.toFixed(1),
      arrow(r.path),
      r.alternates.map((a) => `${arrow(a.path)} (${a.rttMs.toFixed(1)})`).join('; '),
    ]),
  );
}

/** `relaymesh routes --coordinator HOST:PORT --token T [--from NODE] [--origin NAME] [--json]` */
export function registerRoutesCommand(program: Command): void {
  program
    .command('routes')
    .description('show the fastest paths the coordinator computed')
    .requiredOption('--coordinator <host:port>', 'coordinator gRPC address')
    .option('--token <token>', 'cluster token (default: RELAYMESH_TOKEN)')
    .option('--from <node>', 'only routes entering at this node')
    .option('--origin <name>', 'only routes to this origin')
    .option('--json', 'machine-readable output')
    .option('--timeout-ms <ms>', 'give up after this long', '5000')
    .action(async (flags: RoutesFlags) => {
      try {
        const report = await queryRoutes(
          {
            address: flags.coordinator,
            token: requireToken(flags.token),
            timeoutMs: Number(flags.timeoutMs) || 5000,
          },
          {
            ...(flags.from === undefined ? {} : { from: flags.from }),
            ...(flags.origin === undefined ? {} : { origin: flags.origin }),
          },
        );
        process.stdout.write(`${flags.json ? JSON.stringify(report) : renderRoutes(report)}\n`);
      } catch (err) {
        failCommand('routes', err);
      }
    });
}
