import { RelayError } from '@relaymesh/shared';
import type { HealthCheckConfig, Origin, OriginCatalog, UpstreamAddress } from '../proxy/types.ts';

/** An origin as declared in the cluster config (coordinator `OriginInfo`). */
export interface OriginConfig {
  name: string;
  hosts: string[];
  /** `http://HOST:PORT` or `tcp://HOST:PORT`. */
  upstreams: string[];
  healthCheck?: Partial<HealthCheckConfig> | null | undefined;
}

const HOST = /^[a-z0-9.-]{1,253}$|^\[[0-9a-f:.]+\]$/;

function invalid(message: string): RelayError {
  return new RelayError('ERR_CONFIG_INVALID', message);
}

/** Parses `http://h:p` / `tcp://h:p` (port required for tcp, 80 default for http). */
export function parseUpstream(url: string): UpstreamAddress {
  const m = /^(http|tcp):\/\/([^/:]+|\[[^\]]+\])(?::(\d{1,5}))?\/?$/i.exec(url.trim());
  if (!m) throw invalid(`upstream ${url}: expected http://HOST:PORT or tcp://HOST:PORT`);
  const scheme = (m[1] as string).toLowerCase() as 'http' | 'tcp';
  if (scheme === 'tcp' && m[3] === undefined) throw invalid(`upstream ${url}: tcp needs a port`);
  const port = m[3] === undefined ? 80 : Number(m[3]);
  if (port < 1 || port > 65535) throw invalid(`upstream ${url}: port out of range`);
  const host = (m[2] as string).replace(/^\[|\]$/g, '');
  return { scheme, host, port, url: `${scheme}://${m[2]}:${port}` };
}

function healthCheckOf(hc: OriginConfig['healthCheck']): HealthCheckConfig | undefined {
  if (!hc) return undefined;
  const out = {
    path: hc.path || '/',
    intervalMs: hc.intervalMs || 5_000,
    timeoutMs: hc.timeoutMs || 2_000,
  };
  if (!out.path.startsWith('/')) throw invalid(`healthCheck.path ${out.path}: must start with /`);
  return out;
}

/** Validates one declared origin. Throws ERR_CONFIG_INVALID naming the field. */
export function parseOrigin(c: OriginConfig): Origin {
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(c.name)) throw invalid(`origin name ${c.name}: not a name`);
  const hosts = c.hosts.map((h) => h.trim().toLowerCase());
  for (const h of hosts)
    if (!HOST.test(h)) throw invalid(`origin ${c.name}: host ${h} is not a host name`);
  if (c.upstreams.length === 0) throw invalid(`origin ${c.name}: no upstreams`);
  return {
    name: c.name,
    hosts,
    upstreams: c.upstreams.map(parseUpstream),
    healthCheck: healthCheckOf(c.healthCheck),
  };
}

/**
 * The declared origins, looked up by name and by client-facing host. `replace` swaps the
 * whole set atomically (config pushed by the coordinator), so a lookup never sees half of
 * an update. Anything not here is unreachable through this node.
 */
export class OriginTable implements OriginCatalog {
  #byName = new Map<string, Origin>();
  #byHost = new Map<string, Origin>();
  readonly #listeners = new Set<() => void>();

  constructor(configs: OriginConfig[] = []) {
    this.replace(configs);
  }

  /** Validates all, then swaps. Throws ERR_CONFIG_INVALID (nothing changes) on any error. */
  replace(configs: OriginConfig[]): void {
    this.replaceParsed(configs.map(parseOrigin));
  }

  /**
   * Swaps in origins already parsed (another table's {@link origins}: the entry's slow lane
   * gets them this way). Throws ERR_CONFIG_INVALID (nothing changes) on a name or host
   * declared twice.
   */
  replaceParsed(origins: Origin[]): void {
    const byName = new Map<string, Origin>();
    const byHost = new Map<string, Origin>();
    for (const o of origins) {
      if (byName.has(o.name)) throw invalid(`origin ${o.name} declared twice`);
      byName.set(o.name, o);
      for (const h of o.hosts) {
        if (byHost.has(h)) throw invalid(`host ${h} declared by two origins`);
        byHost.set(h, o);
      }
    }
    this.#byName = byName;
    this.#byHost = byHost;
    for (const l of this.#listeners) l();
  }

  /** Calls `listener` after each replace. Returns the function that removes it. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  byHost(host: string): Origin | undefined {
    return this.#byHost.get(host.toLowerCase());
  }

  byName(name: string): Origin | undefined {
    return this.#byName.get(name);
  }

  get origins(): Origin[] {
    return [...this.#byName.values()];
  }
}
