export { startImageServer } from './image-server';
export type { ImageServer, Route, LoggedRequest } from './image-server';
export { tmpDir, randomFile, mountTmpfs } from './files';
export { startPythonHttpServer } from './python-server';
export { readRootReadme, statusTable } from './readme-tables';
