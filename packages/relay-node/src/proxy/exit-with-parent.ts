/**
 * For the entry's child processes (acceptor, slow lane): exit once the parent process is
 * gone. Node's 'disconnect' is not enough: while a handle the child sent waits for its
 * acknowledgement, Node defers the disconnect until the ack comes, and a dead parent never
 * sends it. An acceptor whose entry was killed mid-handover was found alive two hours
 * later, holding 8,182 client connections. So the parent's pid is also checked twice a
 * second (a dead parent's children are re-parented). `keep()`: true while the child should
 * outlive its parent (a lane finishing its drain). Imports nothing but Node's globals.
 */
export function exitWithParent(keep: () => boolean = () => false, intervalMs = 500): void {
  const parent = process.ppid;
  process.on('disconnect', () => {
    if (!keep()) process.exit(0);
  });
  setInterval(() => {
    if (process.ppid !== parent && !keep()) process.exit(0);
  }, intervalMs).unref();
}
