/**
 * The control target of slow-clients.bench.ts (SLOW_LOAD_TARGET=sink): a plain listener in
 * the entry's network namespace that takes the slow clients' connections instead of the
 * entry. It accepts every connection (paused: it reads nothing, so each GET stays in the
 * kernel), holds it and never answers. The load then costs the host what any server
 * accepting its 10,000 connections costs (the load process's connects, the kernel's
 * handshakes, the accepts), and nothing of the entry's own work for a slow client (gate,
 * request, origin connection, body, park). The normal client's rate through the entry
 * meanwhile, against the same baseline, is the share of the slowdown this host would show
 * whatever the entry did.
 *
 * Its accept queue is the entry's default (4096). One JSON argument: {"listenHost":H} (default
 * 127.0.0.1). Prints {"ready":true,"port":P,
 * "pid":PID}, then once a second {"sink":{"accepted":N}}; exits when stdin closes or on
 * SIGTERM, closing every connection.
 */
import net from 'node:net';

const args = JSON.parse(process.argv[2] ?? '{}') as { listenHost?: string };
const held = new Set<net.Socket>();
let accepted = 0;
const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  accepted++;
  held.add(socket);
  socket.on('error', () => socket.destroy());
  socket.on('close', () => held.delete(socket));
});
server.on('error', (err) => {
  process.stderr.write(`slow-clients-sink: ${err.message}\n`);
  process.exit(1);
});
server.listen({ host: args.listenHost ?? '127.0.0.1', port: 0, backlog: 4096 }, () => {
  const { port } = server.address() as net.AddressInfo;
  process.stdout.write(`${JSON.stringify({ ready: true, port, pid: process.pid })}\n`);
});
const tick = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ sink: { accepted } })}\n`);
}, 1000);
const stop = () => {
  clearInterval(tick);
  for (const s of held) s.destroy();
  server.close();
  process.exit(0);
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
