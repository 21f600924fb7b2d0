"""Real parts for the tests: Redis keys under a prefix of their own, `imagecache worker` and `imagecache api`
processes from this checkout (built), and an HTTP image server. Started once per test run, stopped at exit."""

import atexit
import functools
import http.server
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import json

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(REPO, "bin", "imagecache")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
BOARD_USER = "ops"
BOARD_PASSWORD = "board-pw-" + secrets.token_hex(8)


class ImageServer:
    """python's http.server over a folder, on 127.0.0.1; `/slow/NAME` trickles NAME out (to cancel it)."""

    def __init__(self, root):
        self.root = root
        handler = functools.partial(_Handler, directory=root)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def add(self, name, data):
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)
        return self.url + "/" + name

    def add_sparse(self, name, size):
        """A file that claims `size` bytes (a HEAD answers its length) without taking disk space."""
        with open(os.path.join(self.root, name), "wb") as f:
            f.truncate(size)
        return self.url + "/" + name

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/slow/"):
            return self._slow(self.path[len("/slow/"):])
        return super().do_GET()

    def do_HEAD(self):
        if self.path.startswith("/slow/"):
            return self._slow(self.path[len("/slow/"):], body=False)
        return super().do_HEAD()

    def _slow(self, name, body=True):
        path = os.path.join(self.directory, name)
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not body:
            return
        try:
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(4096)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    self.wfile.flush()
                    time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass


class Process:
    """A child process whose output is kept (stdout and stderr, interleaved)."""

    def __init__(self, args, env=None):
        self.args = args
        self.child = subprocess.Popen(
            args,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, **(env or {})),
            start_new_session=True,
        )
        self._out = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in iter(self.child.stdout.readline, b""):
            with self._lock:
                self._out.append(line.decode("utf-8", "replace"))

    def output(self):
        with self._lock:
            return "".join(self._out)

    def wait_for(self, pattern, timeout=30.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.output())
            if m:
                return m
            if self.child.poll() is not None:
                break
            time.sleep(0.05)
        self.stop(signal.SIGKILL)
        raise RuntimeError("%s did not say %r:\n%s" % (" ".join(self.args[:2]), pattern, self.output()))

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.child.poll() is None:
            self.child.send_signal(sig)
            try:
                self.child.wait(timeout)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
        self._reader.join(2)
        self.child.stdout.close()
        return self.child.returncode


class Deployment:
    """One host (`pytest-<hex>`) with caches `instance` and `tftp`, its worker, and the API in front of it."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="imagecache-py-")
        self.host = "pyhost-" + secrets.token_hex(4)
        self.prefix = "{imagecache-pytest-%s}" % secrets.token_hex(4)
        os.mkdir(os.path.join(self.root, "dest"))
        os.mkdir(os.path.join(self.root, "images"))
        self.images = ImageServer(os.path.join(self.root, "images"))
        self.config = os.path.join(self.root, "host.json")
        with open(self.config, "w") as f:
            json.dump(
                {
                    "host": self.host,
                    "caches": [
                        {"name": "instance", "masterDir": self.master_dir("instance"), "forceRaw": False},
                        {"name": "tftp", "masterDir": self.master_dir("tftp"), "forceRaw": False,
                         "validate": False},
                    ],
                    "redis": {"url": REDIS_URL, "prefix": self.prefix},
                    "destinations": {"allowedRoots": [self.root]},
                    "sweepInterval": 0,
                    "logLevel": "info",
                },
                f,
            )
        self.worker = None
        self.api = None
        try:
            # Both start at once: node's start-up is most of the wait.
            self.worker = Process([BIN, "worker", "--config", self.config, "--lock-duration", "3", "--grace", "1"])
            self.api = self.start_api()
            self.worker.wait_for(r"serving")
        except BaseException:
            self.close()
            raise

    def start_api(self, *extra):
        api = Process(
            [BIN, "api", "--config", self.config, "--port", "0", "--wait-timeout", "60", *extra],
            env={"IMAGECACHE_BOARD_USERNAME": BOARD_USER, "IMAGECACHE_BOARD_PASSWORD": BOARD_PASSWORD},
        )
        api.url = api.wait_for(r"listening on (http://\S+)").group(1)
        return api

    def master_dir(self, cache):
        return os.path.join(self.root, "masters", cache)

    def dest(self, name):
        return os.path.join(self.root, "dest", name)

    def close(self):
        for p in (self.api, self.worker):
            if p:
                p.stop()
        self.images.close()
        drop_prefix(self.prefix)
        shutil.rmtree(self.root, ignore_errors=True)


def drop_prefix(prefix):
    """Deletes every Redis key under the run's prefix, so a run leaves nothing in the shared Redis."""
    port = re.search(r":(\d+)", REDIS_URL.split("//", 1)[1])
    args = ["redis-cli", "-p", port.group(1) if port else "6379"]
    keys = subprocess.run(
        args + ["--scan", "--pattern", prefix + ":*"], capture_output=True, text=True, check=False
    ).stdout.split()
    for i in range(0, len(keys), 500):
        subprocess.run(args + ["del"] + keys[i:i + 500], capture_output=True, check=False)


def closed_port():
    """A port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


_deployment = None


def deployment():
    """The run's deployment, started on first use."""
    global _deployment
    if _deployment is None:
        _deployment = Deployment()
        atexit.register(_deployment.close)
    return _deployment
