import { Command } from 'commander';
import { registerCoordinatorCommand } from './coordinator-command.ts';
import { registerDemoCommand } from './demo-command.ts';
import { registerNearestCommand } from './nearest-command.ts';
import { registerNodeCommand } from './node-command.ts';
import { registerNodesCommand } from './nodes-command.ts';
import { registerRoutesCommand } from './routes-command.ts';

/**
 * The `relaymesh` command-line program. The only module that reads process.env, builds
 * the root logger and calls process.exit; each subcommand lives in its own file and is
 * registered here.
 */
const program = new Command();
program
  .name('relaymesh')
  .description('Self-hosted multi-region relay mesh: measured, multi-hop, fault-tolerant routing')
  .version('0.1.0');

// Subcommands register themselves here, one line each:
// registerXCommand(program);
registerCoordinatorCommand(program);
registerRoutesCommand(program);
registerNodesCommand(program);
registerNodeCommand(program);
registerNearestCommand(program);
registerDemoCommand(program);

await program.parseAsync(process.argv);
