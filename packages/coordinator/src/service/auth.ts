import * as grpc from '@grpc/grpc-js';
import { type Logger, tokenFromMetadata, tokensEqual } from '@relaymesh/shared';

/**
 * A server interceptor that admits a call only when its metadata carries the cluster
 * token (constant-time compare). Anything else ends with UNAUTHENTICATED before any
 * handler runs, so no data is ever returned, and logs one warn line per rejected call.
 */
export function tokenAuthInterceptor(token: string, logger: Logger): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const presented = tokenFromMetadata(metadata);
            if (tokensEqual(token, presented)) {
              mdNext(metadata);
              return;
            }
            logger.warn(
              {
                method: method.path,
                remote: call.getPeer(),
                tokenPresent: presented !== undefined,
              },
              'rejected call with a wrong or missing cluster token',
            );
            call.sendStatus({
              code: grpc.status.UNAUTHENTICATED,
              details: 'missing or wrong cluster token',
              metadata: new grpc.Metadata(),
            });
          },
        });
      },
    });
}
