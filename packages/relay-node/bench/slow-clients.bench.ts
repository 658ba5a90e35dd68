/**
 * Issue 6, bounded memory under abuse: 10,000 slow clients (1 B/s each, from their own
 * process) on one entry. Reports the entry's RSS growth per slow client against the bound
 * documented in docs/reliability.md ("Slow clients") and a normal client's download rate
 * while they hold their connections, against the same download without them (baseline).
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/slow-clients.bench.ts
 *
 * SLOW_CLIENTS=N (default 10000), SLOW_NORMAL_MIB (default 32) and SLOW_VIA=local|tunnel (default local: the entry is
 * its own exit; tunnel: entry and exit joined by a relaymux session, both in the measured
 * process, at most 1024 streams per session). SLOW_SEND_TIMEOUT_MS: the entry's send timeout
 * (default 0, off: every slow client stays connected).
 *
 * The third line is the host's TCP socket memory (/proc/net/sockstat): every stalled client
 * holds socket buffers on each leg (its receive queue, the entry's send queue, the entry's
 * receive queue from the origin, the origin's send queue), all on this host. To measure
 * with the kernel setting docs/reliability.md recommends, run the bench in a private
 * network namespace (other processes on the host keep their settings):
 *
 *   SLOW_TCP_MEM="$(cat /proc/sys/net/ipv4/tcp_mem)" unshare -rn bash -c 'ip link set lo up;
 *     sysctl -qw net.ipv4.tcp_notsent_lowat=16384;
 *     node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/slow-clients.bench.ts'
 *
 * (SLOW_TCP_MEM: the namespace cannot show the host-wide tcp_mem limits.)
 */
import { emit, note } from './common.ts';
import { runSlowClients } from './slow-clients-run.ts';

/** docs/reliability.md: entry RSS growth ≤ 32 MiB + 320 KiB per slow client (local exit). */
const BOUND_FIXED_MIB = 32;
const BOUND_KIB_PER_CLIENT = 320;
/** The normal client keeps at least half its rate. */
const MIN_RATIO = 0.5;

const count = Number(process.env.SLOW_CLIENTS ?? 10_000);
const via = process.env.SLOW_VIA === 'tunnel' ? 'tunnel' : 'local';

const normalMiB = Number(process.env.SLOW_NORMAL_MIB ?? 32);
const r = await runSlowClients({
  count,
  via,
  normalBytes: normalMiB * 1024 * 1024,
  settleMs: 5000,
  loadDeadlineMs: 120_000,
  note,
  sendTimeoutMs: Number(process.env.SLOW_SEND_TIMEOUT_MS ?? 0),
  ...(process.env.SLOW_TCP_MEM
    ? { tcpMem: process.env.SLOW_TCP_MEM.split(/\s+/).map(Number) }
    : {}),
});
const boundMiB = BOUND_FIXED_MIB + (count * BOUND_KIB_PER_CLIENT) / 1024;
emit({
  bench: 'slow-clients-entry-rss',
  metric: `entry RSS growth with ${count} slow clients (1 B/s), via ${via}`,
  value: r.rssGrowthMiB,
  unit: 'MiB',
  baseline: {
    name: `bound ${BOUND_FIXED_MIB} MiB + ${BOUND_KIB_PER_CLIENT} KiB x clients`,
    value: boundMiB,
    unit: 'MiB',
  },
  ratio: r.rssGrowthMiB / boundMiB,
  target: '<= bound (ratio <= 1)',
  pass: r.rssGrowthMiB <= boundMiB,
  perClientKiB: r.perClientKiB,
  rssBeforeMiB: r.rssBeforeMiB,
  rssPeakMiB: r.rssPeakMiB,
  connected: r.connected,
  answered: r.answered,
  closedEarly: r.closedEarly,
  statuses: r.statuses,
  kernelAbortsOnMemory: r.kernelAbortsOnMemory,
  kernelMemoryPressures: r.kernelMemoryPressures,
  kernelListenOverflows: r.kernelListenOverflows,
});
const [pressureMiB, maxMiB] = r.kernelTcpMemLimitsMiB;
emit({
  bench: 'slow-clients-kernel-tcp-mem',
  metric: `host TCP memory peak with ${count} slow clients (1 B/s), via ${via}`,
  value: r.kernelTcpMemPeakMiB,
  unit: 'MiB',
  baseline: { name: 'net.ipv4.tcp_mem pressure threshold', value: pressureMiB, unit: 'MiB' },
  ratio: r.kernelTcpMemPeakMiB / pressureMiB,
  target: '< pressure threshold (ratio < 1)',
  pass: r.kernelTcpMemPeakMiB < pressureMiB,
  beforeMiB: r.kernelTcpMemBeforeMiB,
  perClientKiB: r.kernelPerClientKiB,
  tcpMemMaxMiB: maxMiB,
  tcpNotsentLowat: r.tcpNotsentLowat,
  kernelAbortsOnMemory: r.kernelAbortsOnMemory,
  kernelMemoryPressures: r.kernelMemoryPressures,
});
emit({
  bench: 'slow-clients-normal-rate',
  metric: `normal client download rate (${normalMiB} MiB) with ${count} slow clients, via ${via}`,
  value: r.normalUnderLoadMBps,
  unit: 'MB/s',
  baseline: {
    name: 'same download without slow clients',
    value: r.normalBaselineMBps,
    unit: 'MB/s',
  },
  ratio: r.normalRatio,
  target: `>= ${MIN_RATIO} of the baseline`,
  pass: r.normalRatio >= MIN_RATIO,
  ...(r.normalError === undefined ? {} : { error: r.normalError }),
  slowOpenDuring: r.openAtNormal,
  kernelTcpMemDuringMiB: r.kernelTcpMemAtNormalMiB,
  sendTimeoutMs: Number(process.env.SLOW_SEND_TIMEOUT_MS ?? 0),
  kernelAbortsOnMemory: r.kernelAbortsOnMemory,
  kernelMemoryPressures: r.kernelMemoryPressures,
});
process.exit(0);
