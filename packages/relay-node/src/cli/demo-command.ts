import type { Command } from 'commander';
import { type DemoOptions, renderSummary, runDemo, summaryJson } from '../demo/demo.ts';
import { streamOutput } from '../demo/progress.ts';
import { failCommand } from './coordinator-command.ts';

interface DemoFlags {
  json?: boolean;
  fileSize: string;
  directMs: string;
}

/**
 * `relaymesh demo [--json]`: the seed story in the simulated world (docs/operations.md
 * "The demo"). Human output goes to stderr (bars on a TTY, plain lines otherwise); stdout
 * carries the summary, or only the JSON document with --json. Ctrl-C tears the world down.
 */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('the seed story: Chengdu downloads a Tokyo file directly and through the mesh')
    .option('--json', 'print only the summary as JSON on stdout')
    .option('--file-size <bytes>', 'size of the Tokyo file', String(64 * 1024 * 1024))
    .option('--direct-ms <ms>', 'how long the direct download is measured', '8000')
    .action(async (flags: DemoFlags) => {
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const options: DemoOptions = {
          fileSizeBytes: positiveInt(flags.fileSize, 64 * 1024 * 1024),
          directMs: positiveInt(flags.directMs, 8000),
          output: streamOutput(process.stderr, {
            tty: process.stderr.isTTY === true,
            quiet: flags.json === true,
          }),
          signal: controller.signal,
        };
        const summary = await runDemo(options);
        process.stdout.write(
          `${flags.json ? summaryJson(summary) : `\n${renderSummary(summary)}`}\n`,
        );
      } catch (err) {
        failCommand('demo', err);
        if (controller.signal.aborted) process.exitCode = 130;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}

function positiveInt(value: string, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}
