import {
  createCoordinatorStub,
  deadlineIn,
  fromGrpcError,
  type GetRoutesResponse__Output,
  type ListNodesResponse__Output,
} from '@relaymesh/shared';

/** `relaymesh routes --json` output, exactly. */
export interface RoutesReport {
  routes: {
    from: string;
    origin: string;
    path: string[];
    rttMs: number;
    alternates: { path: string[]; rttMs: number }[];
  }[];
}

/** `relaymesh nodes --json` output, exactly. */
export interface NodesReport {
  nodes: {
    id: string;
    region: string;
    status: string;
    advertise: string;
    httpAdvertise?: string;
  }[];
  links: { from: string; to: string; rttMs: number }[];
  origins: { node: string; origin: string; rttMs: number }[];
}

export interface QueryOptions {
  address: string;
  token: string;
  /** @default 5000 */
  timeoutMs?: number;
}

function call<Res>(
  opts: QueryOptions,
  run: (
    stub: ReturnType<typeof createCoordinatorStub>,
    deadline: Date,
    cb: (err: unknown, res: Res | undefined) => void,
  ) => void,
): Promise<Res> {
  const stub = createCoordinatorStub(opts.address, opts.token);
  return new Promise<Res>((resolve, reject) => {
    run(stub, deadlineIn(opts.timeoutMs ?? 5000), (err, res) => {
      stub.close();
      if (err || res === undefined) reject(fromGrpcError(err));
      else resolve(res);
    });
  });
}

/**
 * Asks the coordinator for routes, optionally of one entry node and/or one origin.
 * Rejects with ERR_COORD_UNKNOWN_NODE / _UNKNOWN_ORIGIN / _UNAUTHENTICATED / _UNAVAILABLE.
 */
export async function queryRoutes(
  opts: QueryOptions,
  filter: { from?: string; origin?: string } = {},
): Promise<RoutesReport> {
  const res = await call<GetRoutesResponse__Output>(opts, (stub, deadline, cb) =>
    stub.GetRoutes({ from: filter.from ?? '', origin: filter.origin ?? '' }, { deadline }, cb),
  );
  return {
    routes: res.routes.map((r) => ({
      from: r.from,
      origin: r.origin,
      path: r.path,
      rttMs: r.rttMs,
      alternates: r.alternates.map((a) => ({ path: a.path, rttMs: a.rttMs })),
    })),
  };
}

/** Asks the coordinator for nodes, links and origin legs. Rejects like {@link queryRoutes}. */
export async function queryNodes(opts: QueryOptions): Promise<NodesReport> {
  const res = await call<ListNodesResponse__Output>(opts, (stub, deadline, cb) =>
    stub.ListNodes({}, { deadline }, cb),
  );
  return {
    nodes: res.nodes.map((n) => ({
      id: n.id,
      region: n.region,
      status: n.status,
      advertise: n.advertise,
      ...(n.httpAdvertise === '' ? {} : { httpAdvertise: n.httpAdvertise }),
    })),
    links: res.links.map((l) => ({ from: l.from, to: l.to, rttMs: l.rttMs })),
    origins: res.origins.map((o) => ({ node: o.node, origin: o.origin, rttMs: o.rttMs })),
  };
}
