/**
 * The slow lane's entry point (slow-lane.ts forks it): lowers the priority of every thread
 * first, then loads the lane (lane-child.ts), so that even loading its modules, ~0.3-1 s of
 * CPU, takes nothing from the node's streams. The nice value comes in RELAYMESH_LANE_NICE.
 */
import { reniceAll } from './renice.ts';

const nice = Number(process.env.RELAYMESH_LANE_NICE ?? '10');
const niced = reniceAll(Number.isInteger(nice) && nice >= 0 && nice <= 19 ? nice : 10);
const source = import.meta.url.endsWith('.ts');
const { runLane } = (await import(
  source ? './lane-child.ts' : './lane-child.js'
)) as typeof import('./lane-child.ts');
runLane(niced);
