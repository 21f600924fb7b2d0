export { parseSize, parseDuration, formatSize, formatDuration } from './units';
export {
  DEFAULTS,
  IMAGE_FORMATS,
  LOG_LEVELS,
  TLS_VERSIONS,
  PRIORITY_PRESETS,
  type ImageFormat,
  type LogLevel,
  type TlsVersion,
  type PriorityPreset,
} from './defaults';
export {
  HostConfigSchema,
  CacheSchema,
  HttpSchema,
  AuthSchema,
  FileSchema,
  DestinationsSchema,
  QemuImgSchema,
  RedisSchema,
  ImageServiceSchema,
  ImageServiceAuthSchema,
  OciSchema,
  OciRegistrySchema,
  OciPlatformSchema,
  PeersSchema,
  PeersTlsSchema,
  envName,
  type HostConfig,
  type HostConfigInput,
  type CacheConfig,
  type CacheConfigInput,
  type HttpConfig,
  type DestinationsConfig,
  type HttpAuth,
  type OriginAuth,
  type RedisConfig,
  type RedisNode,
  type ImageServiceConfig,
  type ImageServiceAuthConfig,
  type OciConfig,
  type OciRegistryConfig,
  type PeersConfig,
} from './schema';
export { peerAdvertiseUrl } from './peers';
export { parseHostConfig, type ConfigIssue, type ValidationContext } from './validate';
export { ENV_VARIABLES, type EnvVariable } from './env';
export {
  loadConfig,
  configForSingleCache,
  readConfigFile,
  type LoadConfigOptions,
  type SingleCacheOptions,
  type HostConfigOverrides,
  type ConfigFile,
} from './load';
export { requireDestinationPolicy } from './destinations';
export {
  HOST_NAME,
  HOST_NAME_RULE,
  CACHE_NAME,
  CACHE_NAME_RULE,
  checkHostName,
  checkCacheName,
} from './names';
