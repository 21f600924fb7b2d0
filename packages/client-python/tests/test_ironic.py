"""Ironic's own code (Debian's python3-ironic 21.4.4) calling the drop-in, against a real API and worker."""

import importlib.util
import os
import subprocess
import sys
import unittest

from imagecache_client import Client
from imagecache_client import ironic as dropin
from tests import harness

try:
    from ironic.common import context as ironic_context
    from ironic.common import exception as ironic_exception
    from ironic.conf import CONF
    from ironic.drivers.modules import deploy_utils
    from ironic.drivers.modules import image_cache as ironic_image_cache
except ImportError:  # the suite runs with /usr/bin/python3, where scripts/setup.sh installs python3-ironic
    ironic_exception = None

needs_ironic = unittest.skipUnless(ironic_exception, "python3-ironic is not installed (scripts/setup.sh does it)")


def setUpModule():
    global D, client, restore, ctx
    D = harness.deployment()
    client = Client(D.api.url, harness.BOARD_USER, harness.BOARD_PASSWORD, retries=1, backoff=0.05)
    dropin.configure(
        client=client,
        host=D.host,
        caches={D.master_dir("instance"): "instance", D.master_dir("tftp"): "tftp"},
    )
    restore = dropin.route_ironic_clean_up() if ironic_exception else None
    ctx = ironic_context.get_admin_context() if ironic_exception else None


def tearDownModule():
    if restore:
        restore()


def image(name, tag, size=128 * 1024):
    return D.images.add(name, (tag.encode() * (size // len(tag) + 1))[:size])


def node_dir(name):
    path = D.dest(name)
    os.makedirs(path, exist_ok=True)
    return path


@needs_ironic
class FetchImagesTest(unittest.TestCase):
    def test_fetch_images_places_kernel_and_ramdisk_as_hard_links_of_the_masters(self):
        cache = dropin.ImageCache(D.master_dir("tftp"), 1 << 30, 3600)
        folder = node_dir("node-1")
        images_info = [
            (image("vmlinuz", "kernel"), os.path.join(folder, "deploy_kernel")),
            (image("initrd", "ramdisk"), os.path.join(folder, "deploy_ramdisk")),
        ]
        listed = deploy_utils.fetch_images(ctx, cache, images_info, False)
        self.assertEqual([(h, p) for h, p, _fmt in listed], images_info)
        for _href, path in images_info:
            st = os.stat(path)
            self.assertEqual(st.st_nlink, 2)
            masters = [os.path.join(D.master_dir("tftp"), n) for n in os.listdir(D.master_dir("tftp"))]
            self.assertIn(st.st_ino, [os.stat(m).st_ino for m in masters if os.path.isfile(m)])
        with open(images_info[0][1], "rb") as f:
            self.assertTrue(f.read().startswith(b"kernelkernel"))

    def test_fetch_images_keeps_the_format_fetch_image_returns(self):
        cache = dropin.ImageCache(D.master_dir("instance"), 1 << 30, 3600)
        dest = os.path.join(node_dir("node-2"), "disk")
        href = image("disk.img", "disk")
        self.assertEqual(deploy_utils.fetch_images(ctx, cache, [(href, dest)], False), [(href, dest, "raw")])
        self.assertFalse(cache.last_result["cacheHit"])
        # Again: a hit, nothing downloaded, the same answer.
        os.unlink(dest)
        self.assertEqual(deploy_utils.fetch_images(ctx, cache, [(href, dest)], False), [(href, dest, "raw")])
        self.assertTrue(cache.last_result["cacheHit"])

    def test_a_wrong_checksum_raises_ironics_image_checksum_error_in_fetch_images(self):
        cache = dropin.ImageCache(D.master_dir("instance"), 1 << 30, 3600)
        dest = os.path.join(node_dir("node-3"), "disk")
        with self.assertRaises(ironic_exception.ImageChecksumError) as cm:
            deploy_utils.fetch_images(
                ctx, cache, [(image("bad.img", "bad"), dest)], False,
                expected_checksum="0" * 64, expected_checksum_algo="sha256",
            )
        e = cm.exception
        self.assertIsInstance(e, ironic_exception.InvalidImage)  # the conductor's handlers catch it as one
        self.assertEqual(e.imagecache_code, "IMAGE_CHECKSUM_ERROR")
        self.assertFalse(os.path.exists(dest))

    def test_a_missing_image_raises_ironics_image_not_found(self):
        cache = dropin.ImageCache(D.master_dir("instance"), cache="instance", client=client, host=D.host)
        with self.assertRaises(ironic_exception.ImageNotFound):
            cache.fetch_image(D.images.url + "/absent.img", os.path.join(node_dir("node-4"), "disk"))

    def test_credentials_never_reach_ironics_exceptions(self):
        secret = "ironic-secret-" + "q4w8"
        cache = dropin.ImageCache(D.master_dir("instance"))
        port = D.images.url.rsplit(":", 1)[1]
        for href, auth in (
            ("http://u:%s@127.0.0.1:%s/absent.img" % (secret, port), None),
            (D.images.url + "/absent.img", {"username": "u", "password": secret}),
            (D.images.url + "/absent.img", {"token": secret}),
        ):
            with self.assertRaises(ironic_exception.ImageNotFound) as cm:
                cache.fetch_image(href, os.path.join(node_dir("node-8"), "disk"), image_auth_data=auth)
            e = cm.exception
            for text in (str(e), repr(e), repr(e.kwargs), str(e.__cause__), repr(e.__cause__.details)):
                self.assertNotIn(secret, text)

    def test_a_host_without_worker_raises_ironics_image_download_failed(self):
        cache = dropin.ImageCache(D.master_dir("instance"), host="no-such-host")
        with self.assertRaises(ironic_exception.ImageDownloadFailed) as cm:
            cache.fetch_image(D.images.url + "/x.img", os.path.join(node_dir("node-5"), "disk"))
        self.assertEqual(cm.exception.imagecache_code, "NO_WORKER")


@needs_ironic
class CleanUpTest(unittest.TestCase):
    def huge(self, name):
        free = os.statvfs(D.master_dir("instance"))
        return D.images.add_sparse(name, free.f_bavail * free.f_frsize + (1 << 30))

    def test_clean_up_caches_short_of_space_raises_ironics_insufficient_disk_space(self):
        href = self.huge("huge-1.img")
        with self.assertRaises(ironic_exception.InsufficientDiskSpace) as cm:
            dropin.clean_up_caches(ctx, D.master_dir("instance"), [(href, D.dest("huge-1"))])
        text = str(cm.exception)
        self.assertIn(D.master_dir("instance"), text)
        self.assertRegex(text, r"Required \d+ MiB, only \d+ MiB available")
        self.assertEqual(cm.exception.imagecache_code, "INSUFFICIENT_DISK_SPACE")

    def test_fetch_images_turns_it_into_instance_deploy_failure_as_ironic_does(self):
        self.assertIs(ironic_image_cache.clean_up_caches, dropin.clean_up_caches)
        cache = dropin.ImageCache(D.master_dir("instance"), 1 << 30, 3600)
        dest = os.path.join(node_dir("node-6"), "disk")
        with self.assertRaises(ironic_exception.InstanceDeployFailure) as cm:
            deploy_utils.fetch_images(ctx, cache, [(self.huge("huge-2.img"), dest)], False)
        self.assertIn("doesn't have enough disk space", str(cm.exception))
        self.assertFalse(os.path.exists(dest))

    def test_clean_up_and_clean_up_all_run_in_the_worker(self):
        cache = dropin.ImageCache(D.master_dir("tftp"), 1 << 30, 3600)
        dest = D.dest("unused-kernel")
        cache.fetch_image(image("unused-kernel", "unused"), dest)
        master = cache.last_result["masterPath"]
        os.unlink(dest)
        self.assertTrue(os.path.exists(master))
        ironic_image_cache.clean_up_all()  # routed: TTL and size only, this master is neither old nor too much
        self.assertTrue(os.path.exists(master))
        cache.clean_up(amount=1)
        self.assertFalse(os.path.exists(master))


@needs_ironic
class OneImportTest(unittest.TestCase):
    def test_ironics_deploy_utils_with_its_image_cache_import_changed_fetches_through_imagecache(self):
        # Ironic's own module, with the one line a conductor changes, and nothing else.
        with open(deploy_utils.__file__, encoding="utf-8") as f:
            source = f.read()
        before = "from ironic.drivers.modules import image_cache\n"
        self.assertEqual(source.count(before), 1)
        source = source.replace(before, "from imagecache_client import ironic as image_cache\n")
        spec = importlib.util.spec_from_loader("ironic.drivers.modules.deploy_utils_imagecache", loader=None)
        patched = importlib.util.module_from_spec(spec)
        patched.__file__ = deploy_utils.__file__
        exec(compile(source, deploy_utils.__file__, "exec"), patched.__dict__)

        CONF.set_override("instance_master_path", D.master_dir("instance"), group="pxe")
        try:
            cache = patched.InstanceImageCache()  # Ironic's class: master folder, size and TTL from CONF
        finally:
            CONF.clear_override("instance_master_path", group="pxe")
        self.assertIsInstance(cache, dropin.ImageCache)
        self.assertEqual(cache.cache, "instance")
        dest = os.path.join(node_dir("node-7"), "disk")
        href = image("one-import.img", "one-import")
        self.assertEqual(patched.fetch_images(ctx, cache, [(href, dest)], False), [(href, dest, "raw")])
        self.assertEqual(os.stat(dest).st_ino, os.stat(cache.last_result["masterPath"]).st_ino)


class WithoutIronicTest(unittest.TestCase):
    def test_without_ironic_the_drop_in_raises_the_clients_errors(self):
        href = image("noironic.img", "noironic")
        code = (
            "import sys; sys.modules['ironic'] = None\n"
            "from imagecache_client import Client, errors, ironic\n"
            "c = ironic.ImageCache(%r, client=Client(%r, %r, %r), host=%r, cache='instance')\n"
            "try:\n"
            "    c.fetch_image(%r, %r, expected_checksum='0' * 64)\n"
            "except errors.ImageChecksumError as e:\n"
            "    print(type(e).__module__, e.code)\n"
            % (D.master_dir("instance"), D.api.url, harness.BOARD_USER, harness.BOARD_PASSWORD, D.host, href,
               D.dest("noironic.img"))
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            capture_output=True, text=True, timeout=30,
        )
        self.assertEqual(out.stdout.strip(), "imagecache_client.errors IMAGE_CHECKSUM_ERROR", out.stderr)


if __name__ == "__main__":
    unittest.main()
