// Launcher of the coordinator and nodes that the demo starts: the `relaymesh` CLI itself
// (same argv, same code), except that the process also stops (SIGTERM, so the command's
// own graceful shutdown runs) when its stdin closes. The world runner gives every child a
// stdin pipe, so a demo that is SIGKILLed, or crashes, leaves no relaymesh process behind;
// the world's own proxies and origins do the same with `--exit-with-parent`.
const stop = () => process.kill(process.pid, 'SIGTERM');
process.stdin.once('end', stop);
process.stdin.once('error', stop);
process.stdin.resume();
// A runtime URL: this file is compiled next to dist/cli/main.js (dist/demo/).
await import(new URL('../cli/main.js', import.meta.url).href);
