/**
 * The floor for bench/entry-accept.bench.ts: Node's own handle passing, nothing of ours.
 * Listens paused on 127.0.0.1 (port 0) and sends each accepted socket to its parent over
 * the IPC channel, as the entry's acceptor process does, without a queue, a gate or
 * counters. Prints nothing; sends {"t":"listening","port":P} first. Exits when the parent
 * goes.
 */
import net from 'node:net';

const server = net.createServer({ pauseOnConnect: true }, (socket) => {
  socket.on('error', () => {});
  process.send?.({ t: 'socket' }, socket, { keepOpen: false });
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ t: 'listening', port: (server.address() as net.AddressInfo).port });
});
process.on('disconnect', () => process.exit(0));
