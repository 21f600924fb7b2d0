export {
  FetchOptionsSchema,
  FetchRequestSchema,
  RequestAuthSchema,
  FETCH_OPTION_KEYS,
  fetchOptionsOf,
} from './fetch-request';
export type { FetchRequestOptions, FetchRequest, RequestAuth } from './fetch-request';
