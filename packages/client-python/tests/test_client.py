"""imagecache_client.Client against a real API and worker (processes of this checkout), Redis and HTTP server."""

import hashlib
import os
import socket
import threading
import time
import unittest

import imagecache_client as ic
from imagecache_client import errors
from tests import harness

SECRET = "s3cret-" + "x9q7"


def setUpModule():
    global D, client
    D = harness.deployment()
    client = ic.Client(D.api.url, harness.BOARD_USER, harness.BOARD_PASSWORD, retries=1, backoff=0.05)


def image_bytes(tag, size=256 * 1024):
    """Bytes no format inspector recognises (raw), distinct per test."""
    return (tag.encode() * (size // len(tag) + 1))[:size]


class FetchTest(unittest.TestCase):
    def test_miss_then_hit_hard_links_the_master(self):
        data = image_bytes("miss-then-hit")
        href = D.images.add("mth.img", data)
        first = client.fetch(D.host, "instance", href, D.dest("mth-1.img"))
        self.assertFalse(first["cacheHit"])
        self.assertEqual(first["bytesDownloaded"], len(data))
        self.assertEqual(first["format"], "raw")
        self.assertEqual(first["checksum"], {"algo": "sha256", "value": hashlib.sha256(data).hexdigest()})
        with open(D.dest("mth-1.img"), "rb") as f:
            self.assertEqual(f.read(), data)
        master = first["masterPath"]
        self.assertEqual(os.path.dirname(master), D.master_dir("instance"))

        second = client.fetch(D.host, "instance", href, D.dest("mth-2.img"))
        self.assertTrue(second["cacheHit"])
        self.assertEqual(second["bytesDownloaded"], 0)
        self.assertEqual(os.stat(D.dest("mth-2.img")).st_ino, os.stat(master).st_ino)
        self.assertEqual(os.stat(master).st_nlink, 3)  # the master and two destinations

    def test_wrong_checksum_raises_image_checksum_error_and_places_nothing(self):
        href = D.images.add("bad-sum.img", image_bytes("bad-sum"))
        with self.assertRaises(errors.ImageChecksumError) as cm:
            client.fetch(D.host, "instance", href, D.dest("bad-sum.img"), expected_checksum="0" * 64,
                         expected_checksum_algo="sha256")
        e = cm.exception
        self.assertEqual((e.code, e.status, e.retryable), ("IMAGE_CHECKSUM_ERROR", 422, False))
        self.assertIsInstance(e, ic.ImageCacheError)
        self.assertEqual(e.details["expected"], "0" * 64)
        self.assertFalse(os.path.exists(D.dest("bad-sum.img")))
        self.assertEqual(os.listdir(D.master_dir("instance")).count(os.path.basename(href)), 0)

    def test_missing_image_is_image_not_found(self):
        with self.assertRaises(errors.ImageNotFound) as cm:
            client.fetch(D.host, "instance", D.images.url + "/absent.img", D.dest("absent.img"))
        self.assertEqual((cm.exception.code, cm.exception.status), ("IMAGE_NOT_FOUND", 404))

    def test_no_live_worker_for_the_host_is_no_worker_at_once(self):
        start = time.monotonic()
        with self.assertRaises(errors.NoWorker) as cm:
            client.fetch("no-such-host", "instance", D.images.url + "/x.img", D.dest("x.img"))
        self.assertEqual((cm.exception.code, cm.exception.status, cm.exception.retryable), ("NO_WORKER", 409, True))
        self.assertLess(time.monotonic() - start, 5)

    def test_wait_false_returns_the_job_id_and_job_reads_it(self):
        href = D.images.add("nowait.img", image_bytes("nowait"))
        job_id = client.fetch(D.host, "instance", href, D.dest("nowait.img"), wait=False)
        self.assertIsInstance(job_id, str)
        end = time.monotonic() + 15
        job = client.job(job_id)
        while job["state"] != "completed" and time.monotonic() < end:
            time.sleep(0.1)
            job = client.job(job_id)
        self.assertEqual(job["state"], "completed")
        self.assertEqual(job["result"]["destPath"], D.dest("nowait.img"))
        self.assertTrue(os.path.isfile(D.dest("nowait.img")))

    def test_a_cancelled_job_fails_aborted_and_places_nothing(self):
        # 64 KiB trickled at 4 KiB every 0.2 s: about 3 s, long enough to cancel it midway.
        D.images.add("slow.img", image_bytes("slow", 64 * 1024))
        job_id = client.fetch(D.host, "instance", D.images.url + "/slow/slow.img", D.dest("slow.img"), wait=False)
        end = time.monotonic() + 10
        while client.job(job_id)["state"] != "active" and time.monotonic() < end:
            time.sleep(0.05)
        answer = client.cancel(job_id)
        self.assertEqual(answer["cancelled"], True)
        end = time.monotonic() + 10
        job = client.job(job_id)
        while job["state"] not in ("failed", "completed") and time.monotonic() < end:
            time.sleep(0.1)
            job = client.job(job_id)
        self.assertEqual(job["state"], "failed")
        self.assertEqual(job["error"]["code"], "ABORTED")
        self.assertFalse(os.path.exists(D.dest("slow.img")))
        with self.assertRaises(errors.JobFinished) as cm:
            client.cancel(job_id)
        self.assertEqual(cm.exception.status, 409)
        with self.assertRaises(errors.JobNotFound):
            client.job(job_id + "-nope")


class CleanUpTest(unittest.TestCase):
    def test_clean_up_removes_an_unused_master(self):
        href = D.images.add("unused.img", image_bytes("unused"))
        result = client.fetch(D.host, "tftp", href, D.dest("unused.img"))
        os.unlink(D.dest("unused.img"))  # the master is now unused (one link)
        answer = client.clean_up(D.host, "tftp", amount="1MiB")
        self.assertIn(os.path.basename(result["masterPath"]), [r["name"] for r in answer["removed"]])
        self.assertFalse(os.path.exists(result["masterPath"]))

    def test_clean_up_caches_short_of_space_is_insufficient_disk_space_in_bytes(self):
        free = os.statvfs(D.master_dir("instance"))
        size = free.f_bavail * free.f_frsize + (1 << 30)
        href = D.images.add_sparse("huge-client.img", size)
        with self.assertRaises(errors.InsufficientDiskSpace) as cm:
            client.clean_up_caches(D.host, D.master_dir("instance"), [href])
        e = cm.exception
        self.assertEqual((e.code, e.status), ("INSUFFICIENT_DISK_SPACE", 507))
        self.assertEqual(e.path, D.master_dir("instance"))
        self.assertEqual(e.required, size)
        self.assertGreater(e.free, 0)
        self.assertLess(e.free, size)

    def test_clean_up_caches_with_room_answers_the_measure(self):
        href = D.images.add("small.img", image_bytes("small"))
        answer = client.clean_up_caches(D.host, D.master_dir("instance"), [href])
        self.assertEqual(answer["required"], 256 * 1024)
        self.assertGreater(answer["free"], answer["required"])


class AuthAndCredentialsTest(unittest.TestCase):
    def test_wrong_board_password_is_unauthorized_without_the_password_in_its_text(self):
        wrong = "wrong-" + SECRET
        other = ic.Client(D.api.url, harness.BOARD_USER, wrong, retries=0)
        with self.assertRaises(errors.Unauthorized) as cm:
            other.fetch(D.host, "instance", D.images.url + "/a.img", D.dest("unauth.img"))
        e = cm.exception
        self.assertEqual((e.code, e.status), ("UNAUTHORIZED", 401))
        self.assert_no_secret(e, wrong)
        self.assertFalse(os.path.exists(D.dest("unauth.img")))

    def test_credentials_of_the_href_and_auth_never_reach_an_exception(self):
        href = "http://user:%s@127.0.0.1:%d/absent.img" % (SECRET, int(D.images.url.rsplit(":", 1)[1]))
        with self.assertRaises(errors.ImageNotFound) as cm:
            client.fetch(D.host, "instance", href, D.dest("cred.img"))
        self.assert_no_secret(cm.exception, SECRET)
        token = "tok-" + SECRET
        with self.assertRaises(errors.ImageNotFound) as cm:
            client.fetch(D.host, "instance", D.images.url + "/absent.img", D.dest("cred2.img"),
                         auth={"type": "bearer", "token": token})
        self.assert_no_secret(cm.exception, token)

    def test_credentials_in_the_api_url_never_reach_an_exception(self):
        port = harness.closed_port()
        down = ic.Client("http://ops:%s@127.0.0.1:%d" % (SECRET, port), retries=0)
        with self.assertRaises(errors.ApiUnavailable) as cm:
            down.job("x")
        self.assert_no_secret(cm.exception, SECRET)
        self.assertNotIn(SECRET, repr(down))

    def test_a_server_echoing_credentials_gets_them_scrubbed_by_the_client(self):
        import http.server
        import json

        class Echo(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                sent = json.loads(self.rfile.read(int(self.headers["content-length"])))
                text = "echo %s %s %s" % (self.headers["authorization"], sent["href"], json.dumps(sent["auth"]))
                body = json.dumps({"error": {"code": "IMAGE_DOWNLOAD_FAILED", "message": text,
                                             "details": {"href": sent["href"], "echo": text}}}).encode()
                self.send_response(502)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            board_pw, href_pw, token = "board-" + SECRET, "href-" + SECRET, "token-" + SECRET
            c = ic.Client("http://127.0.0.1:%d" % httpd.server_address[1], "ops", board_pw, retries=0)
            with self.assertRaises(errors.ImageDownloadFailed) as cm:
                c.fetch(D.host, "instance", "http://u:%s@images.example/a.img" % href_pw, D.dest("echo.img"),
                        auth={"type": "bearer", "token": token})
            self.assertIn("echo", str(cm.exception))
            for secret in (board_pw, href_pw, token, SECRET):
                self.assert_no_secret(cm.exception, secret)
        finally:
            httpd.shutdown()
            httpd.server_close()

    def assert_no_secret(self, e, secret):
        for text in (str(e), repr(e), repr(e.details), repr(e.args)):
            self.assertNotIn(secret, text)


class ApiDownTest(unittest.TestCase):
    def test_connection_refused_is_retried_a_bounded_number_of_times_then_api_unavailable(self):
        port = harness.closed_port()
        down = ic.Client("http://127.0.0.1:%d" % port, "ops", "pw", retries=3, backoff=0.05)
        start = time.monotonic()
        with self.assertRaises(errors.ApiUnavailable) as cm:
            down.fetch(D.host, "instance", D.images.url + "/a.img", D.dest("down.img"))
        elapsed = time.monotonic() - start
        e = cm.exception
        self.assertEqual((e.code, e.retryable, e.status), ("API_UNAVAILABLE", True, None))
        self.assertIn("after 4 attempts", str(e))
        self.assertIn("127.0.0.1:%d" % port, str(e))
        # 0.05 + 0.1 + 0.2 s of backoff, and no more.
        self.assertGreaterEqual(elapsed, 0.35)
        self.assertLess(elapsed, 3)

    def test_connections_dropped_before_an_answer_retry_a_get_but_never_a_post(self):
        accepted = []
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)

        def drop():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                accepted.append(1)
                conn.recv(65536)
                conn.close()

        threading.Thread(target=drop, daemon=True).start()
        try:
            flaky = ic.Client("http://127.0.0.1:%d" % server.getsockname()[1], retries=2, backoff=0.01)
            with self.assertRaises(errors.ApiUnavailable):
                flaky.job("some-queue~1")  # a GET: sent again
            self.assertEqual(len(accepted), 3)
            # A POST may have been received before the drop: sent once, or a second job could be queued.
            with self.assertRaises(errors.ApiUnavailable) as caught:
                flaky.clean_up(D.host, "instance")
            self.assertEqual(len(accepted), 4)
            self.assertIn("may have been queued", str(caught.exception))
        finally:
            server.close()

    def test_an_answer_that_does_not_come_is_api_timeout_and_not_retried(self):
        accepted = []
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)

        def hold():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                accepted.append(conn)  # read nothing, answer nothing

        threading.Thread(target=hold, daemon=True).start()
        try:
            silent = ic.Client("http://127.0.0.1:%d" % server.getsockname()[1], timeout=0.3, retries=3)
            start = time.monotonic()
            with self.assertRaises(errors.ApiTimeout) as cm:
                silent.job("some-job")
            self.assertLess(time.monotonic() - start, 2)
            self.assertEqual((cm.exception.code, cm.exception.retryable), ("API_TIMEOUT", True))
            self.assertEqual(len(accepted), 1)
        finally:
            server.close()
            for conn in accepted:
                conn.close()

    def test_the_api_stopped_is_api_unavailable(self):
        api = D.start_api()
        stopped = ic.Client(api.url, harness.BOARD_USER, harness.BOARD_PASSWORD, retries=1, backoff=0.05)
        with self.assertRaises(errors.JobNotFound):
            stopped.job("fetch.instance@%s~absent" % D.host)
        api.stop()
        with self.assertRaises(errors.ApiUnavailable):
            stopped.job("fetch.instance@%s~absent" % D.host)

    def test_503_is_retried_then_the_apis_error_is_raised(self):
        import http.server
        import json

        hits = []

        class Unavailable(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                hits.append(self.path)
                body = json.dumps({"error": {"code": "QUEUE_UNAVAILABLE", "message": "redis down",
                                             "retryable": True}}).encode()
                self.send_response(503)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            c = ic.Client("http://127.0.0.1:%d" % httpd.server_address[1], retries=2, backoff=0.01)
            with self.assertRaises(errors.QueueUnavailable) as cm:
                c.fetch(D.host, "instance", D.images.url + "/a.img", D.dest("q.img"))
            self.assertEqual((cm.exception.status, cm.exception.retryable), (503, True))
            self.assertEqual(hits, ["/v1/fetch"] * 3)
        finally:
            httpd.shutdown()
            httpd.server_close()


if __name__ == "__main__":
    unittest.main()
