/**
 * Log field names. Renaming one is a breaking change for whoever queries the logs
 * (docs/operations.md lists them). Units go in the name.
 */
export const F = {
  COMPONENT: 'component',
  NODE_ID: 'nodeId',
  REGION: 'region',
  PEER_NODE_ID: 'peerNodeId',
  SESSION_ID: 'sessionId',
  TUNNEL_ID: 'tunnelId',
  STREAM_ID: 'streamId',
  ROUTE: 'route',
  PATH: 'path',
  ORIGIN: 'origin',
  RTT_MS: 'rttMs',
  DURATION_MS: 'durationMs',
  BYTES_IN: 'bytesIn',
  BYTES_OUT: 'bytesOut',
  CODE: 'code',
  REMOTE: 'remote',
} as const;
