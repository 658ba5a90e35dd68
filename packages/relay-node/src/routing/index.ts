export { type OriginConfig, OriginTable, parseOrigin, parseUpstream } from './origin-catalog.ts';
export { type RouteEntry, RouteTable, type RouteTableOptions } from './route-table.ts';
