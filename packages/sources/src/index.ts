export { resolveSource } from './resolve';
export { HttpSource } from './http/http-source';
export { parseContentRange } from './http/content-range';
export { rangedGet } from './http/ranged-get';
export type { RangedAnswer, ResumedRange } from './http/ranged-get';
export { closeHttpConnections } from './http/dispatchers';
export { fetchChecksumFile, DEFAULT_CHECKSUM_FILE_MAX_BYTES } from './http/checksum-file';
export type { FetchChecksumOptions } from './http/checksum-file';
export { FileSource, FORBIDDEN_FOLDERS } from './file-source';
export { canonicalPath, isInside, CanonicalPathError } from './canonical-path';
export { GlanceSource } from './glance/glance-source';
export {
  KeystoneSession,
  keystoneSession,
  clearKeystoneSessions,
  TOKEN_REFRESH_MARGIN_MS,
} from './glance/keystone';
export type { KeystoneToken } from './glance/keystone';
export { OciSource, hostPlatform, normalizeArch } from './oci/oci-source';
export { parseOciHref, digestHref } from './oci/reference';
export type { OciReference, Digest } from './oci/reference';
export {
  clearRegistryTokens,
  fromPullSecret,
  MAX_REGISTRY_TOKENS,
  parseChallenge,
  realmAllowed,
  registryTokenCount,
} from './oci/registry-auth';
export { isImageServiceId, parseImageServiceId } from './href';
export { parseHttpDate, parseLastModified } from './http-date';
export { uuidv5Url } from './uuid5';
export {
  DEFAULT_FILE_ROOTS,
  DEFAULT_HTTP_OPTIONS,
  DEFAULT_OCI_DISK_TYPES,
  OCI_DISK_TYPES_FOR_CONVERSION,
  resolveHttpOptions,
} from './options';
export { parseNetwork } from './http/redirect-policy';
export type {
  HttpOptions,
  ImageServiceAuth,
  ImageServiceOptions,
  KeystoneCredentials,
  OciOptions,
  OciRegistryOptions,
  SourceOptions,
} from './options';
export { isBlockReadable } from './types';
export type {
  BlockReadable,
  ByteSink,
  ImageAuth,
  ImageBody,
  ImageInfo,
  ImageSource,
  OpenOptions,
  ShowOptions,
} from './types';
