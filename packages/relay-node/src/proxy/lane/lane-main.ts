/**
 * The slow lane's entry point (slow-lane.ts forks it): lowers the priority of every thread
 * first, then loads the lane (lane-child.ts), so that even loading its modules, ~0.3-1 s of
 * CPU, takes nothing from the node's streams. The nice value comes in RELAYMESH_LANE_NICE;
 * with RELAYMESH_LANE_POLICY=idle, lane-child.ts puts every thread under SCHED_IDLE as well
 * once loaded. With RELAYMESH_LANE_CPUS (a CPU list), every thread moves to those CPUs
 * first of all, so that even the lane's start runs off the node's cores.
 */
import type { ToLane } from './lane-protocol.ts';
import { allowedCpus, pinAll, reniceAll } from './renice.ts';

const cpuList = process.env.RELAYMESH_LANE_CPUS;
const cpusFailed = cpuList ? pinAll(cpuList) : undefined;
const nice = Number(process.env.RELAYMESH_LANE_NICE ?? '10');
// SCHED_IDLE (RELAYMESH_LANE_POLICY=idle) comes once loaded: lane-child.ts, at `start`.
const niced = reniceAll(Number.isInteger(nice) && nice >= 0 && nice <= 19 ? nice : 10);
const cpus = allowedCpus();
if (cpus !== undefined) niced.cpus = cpus;
if (cpusFailed !== undefined) niced.cpusFailed = cpusFailed;
// The node sends `start` at once: Node emits IPC messages as they are read, and nothing
// would listen to them while the lane's modules load.
const early: Array<[ToLane, unknown]> = [];
const hold = (m: ToLane, handle?: unknown) => early.push([m, handle]);
process.on('message', hold);
const source = import.meta.url.endsWith('.ts');
const { runLane } = (await import(
  source ? './lane-child.ts' : './lane-child.js'
)) as typeof import('./lane-child.ts');
process.off('message', hold);
runLane(niced, early);
