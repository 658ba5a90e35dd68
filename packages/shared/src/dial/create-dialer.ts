import { connectTcp, DEFAULT_DIAL_TIMEOUT_MS, type Dialer } from './dialer.ts';
import { HttpConnectDialer } from './http-connect.ts';

export interface CreateDialerOptions {
  /** `http://[user:pass@]host:port`; when absent, connections go direct. */
  egressProxy?: string | undefined;
  /** Default per-dial timeout (connect plus CONNECT exchange). @default 10000 */
  timeoutMs?: number | undefined;
}

/**
 * The dialer a node uses for every outbound connection: through the egress proxy when one
 * is configured (`--egress-proxy`), direct otherwise.
 *
 * @throws ERR_CONFIG_INVALID when `egressProxy` is not an `http://host:port` URL.
 */
export function createDialer(options: CreateDialerOptions = {}): Dialer {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
  if (options.egressProxy !== undefined && options.egressProxy !== '') {
    return new HttpConnectDialer(options.egressProxy, { timeoutMs });
  }
  return {
    description: 'direct',
    dial: (target, dialOptions = {}) => connectTcp(target, { timeoutMs, ...dialOptions }),
  };
}
