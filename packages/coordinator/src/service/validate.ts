import { type RegisterRequest__Output, RelayError } from '@relaymesh/shared';
import type { NodeAnnouncement } from '../membership/registry.ts';

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function bad(message: string): RelayError {
  return new RelayError('ERR_COORD_BAD_REQUEST', message);
}

/** Longest URL accepted: these are echoed to every node in every membership message. */
const MAX_URL_LENGTH = 512;

function checkUrl(value: string, field: string, schemes: readonly string[]): void {
  if (value.length > MAX_URL_LENGTH)
    throw bad(`${field} is longer than ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad(`${field} ${JSON.stringify(value)} is not a URL`);
  }
  if (!schemes.includes(url.protocol) || url.hostname === '') {
    throw bad(`${field} ${JSON.stringify(value)} must be a ${schemes.join(' or ')}// URL`);
  }
}

/** Checks a registration; throws ERR_COORD_BAD_REQUEST naming the field. */
export function toAnnouncement(req: RegisterRequest__Output): NodeAnnouncement {
  if (!ID_RE.test(req.nodeId)) throw bad(`nodeId ${JSON.stringify(req.nodeId)} is not a valid id`);
  if (req.region === '' || req.region.length > 64) {
    throw bad(`region ${JSON.stringify(req.region)} is empty or too long`);
  }
  checkUrl(req.advertise, 'advertise', ['ws:', 'wss:']);
  if (req.httpAdvertise !== '') checkUrl(req.httpAdvertise, 'httpAdvertise', ['http:', 'https:']);
  return {
    id: req.nodeId,
    region: req.region,
    advertise: req.advertise,
    httpAdvertise: req.httpAdvertise,
    version: req.version.slice(0, 64),
  };
}
