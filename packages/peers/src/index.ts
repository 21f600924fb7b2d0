export { signPeerToken, verifyPeerToken, DEFAULT_PEER_TOKEN_TTL_SECONDS } from './peer-token';
export {
  PeerServer,
  DEFAULT_UPLOAD_CONCURRENCY,
  BUSY_RETRY_AFTER_SECONDS,
  DEFAULT_PEER_IDLE_TIMEOUT_MS,
  type PeerServerOptions,
  type PeerRequestEvent,
  type PeerRequestResult,
} from './peer-server';
export { PeerSource, peerSourceFor, type PeerSourceOptions } from './peer-source';
export { peerMasterUrl, peerTokenName, parsePeerPath, PEER_PATH_PREFIX } from './peer-paths';
export { masterSha256, openPublishedMaster, type OpenedMaster, type RefusalReason } from './published-master';
export { TokenBucket } from './token-bucket';
export { requestedRange, type RequestedRange } from './byte-range';
