import { RelayError } from '@relaymesh/shared';
import type { OriginKind } from '../world/types.ts';
import { startHttpEchoServer, startTcpEchoServer } from './echo-servers.ts';
import { type OriginServer, startFileServer } from './file-server.ts';

/** What an origin process needs (a WorldOrigin carries all of it). */
export interface OriginConfig {
  kind: OriginKind;
  /** `file` only. @default 1 MiB */
  sizeBytes?: number;
  /** `file` only. @default 1 */
  contentSeed?: number;
  /** @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/** Starts the origin server of `config.kind` in this process. @throws ERR_WORLD_CONFIG */
export function startOrigin(config: OriginConfig): Promise<OriginServer> {
  const common = { port: config.port ?? 0, host: config.host ?? '127.0.0.1' };
  switch (config.kind) {
    case 'file':
      return startFileServer({
        ...common,
        sizeBytes: config.sizeBytes ?? 1024 * 1024,
        contentSeed: config.contentSeed ?? 1,
      });
    case 'http':
      return startHttpEchoServer(common);
    case 'tcp':
      return startTcpEchoServer(common);
    default:
      throw new RelayError('ERR_WORLD_CONFIG', `unknown origin kind ${String(config.kind)}`);
  }
}
