export { resolveSource } from './resolve';
export { HttpSource, parseContentRange } from './http/http-source';
export { closeHttpConnections } from './http/dispatchers';
export { FileSource, FORBIDDEN_FOLDERS } from './file-source';
export { isImageServiceId, parseImageServiceId } from './href';
export { parseHttpDate, parseLastModified } from './http-date';
export { DEFAULT_FILE_ROOTS, DEFAULT_HTTP_OPTIONS } from './options';
export type { HttpOptions, SourceOptions } from './options';
export type { ImageAuth, ImageBody, ImageInfo, ImageSource, OpenOptions } from './types';
