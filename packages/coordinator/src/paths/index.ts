export {
  type CompiledGraph,
  compileGraph,
  DEFAULT_PATH_OPTIONS,
  type LinkEstimate,
  type OriginLegEstimate,
  type PathEstimate,
  type PathOptions,
  type RoutingGraph,
} from './graph.ts';
export {
  DEFAULT_HYSTERESIS,
  decide,
  type HysteresisOptions,
  type PlannedRoute,
  planRoutes,
  type RoutePlan,
  type RouteState,
  routeKey,
} from './hysteresis.ts';
export {
  computeRoutes,
  computeRoutesOn,
  estimateNamedPath,
  type RouteCandidates,
} from './routes.ts';
