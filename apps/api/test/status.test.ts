import { ImageTooLarge, InsufficientDiskSpace, deserializeError } from '@imagecache/errors';
import { engineError } from '../src/errors';

// IMAGE_TOO_LARGE (issue 11): the image can't fit the cache whatever is evicted, a property of the image (422),
// unlike INSUFFICIENT_DISK_SPACE (507), where room may come later. Both after the trip through Redis.
test.each([
  [new ImageTooLarge('image too large', { measured: 'declared', size: 2 ** 40, limit: 2 ** 30 }), 422],
  [new InsufficientDiskSpace('/var/lib/imagecache', 2 ** 30, 2 ** 20), 507],
])('%s answers %i with its code and details', (err, status) => {
  const { status: got, body } = engineError(deserializeError(err.toJSON()));
  expect(got).toBe(status);
  expect(body.error.code).toBe(err.code);
  expect(body.error.details).toMatchObject(err.details);
});
