"""The imagecache HTTP API from Python (standard library only)."""

import urllib.parse

from .redact import auth_secrets, href_secrets
from .transport import Transport

# What a waiting call waits at most when the caller gives no bound: the API's own default (--wait-timeout).
DEFAULT_WAIT_TIMEOUT = 1800.0


class Client:
    """A client of one imagecache API (``imagecache api``).

    ``url``: the API's base URL (``http://127.0.0.1:8080``); ``username``/``password``: the board's credentials
    (they guard ``/v1``), also accepted as ``user:pass@`` in ``url``. ``timeout``: seconds to connect and to get
    the answer of a call that does not wait for a job. ``retries``: how many times a connection failure or a 503
    is retried (with ``backoff`` seconds, doubling), before ``ApiUnavailable`` (or the 503's error) is raised.
    ``wait_timeout``: how long a waiting call waits for its job by default (seconds; the API's default is 30 min).

    Errors are the classes of :mod:`imagecache_client.errors`, named and coded as the API's; no credential (the
    board's password, a request's ``auth``, an href's ``user:pass@``) ever appears in their text.
    """

    def __init__(self, url, username=None, password=None, timeout=30.0, retries=3, backoff=0.5, wait_timeout=None):
        self._http = Transport(url, username, password, timeout=timeout, retries=retries, backoff=backoff)
        self.url = self._http.base
        self.timeout = timeout
        self.wait_timeout = wait_timeout

    def __repr__(self):
        return "Client(%r)" % self.url

    def fetch(
        self,
        host,
        cache,
        href,
        dest,
        force_raw=None,
        expected_format=None,
        expected_checksum=None,
        expected_checksum_algo=None,
        auth=None,
        wait=True,
        wait_timeout=None,
    ):
        """Makes ``href`` appear at ``dest`` on ``host`` through its cache ``cache``.

        Returns the engine's result (``cacheHit``, ``masterPath``, ``destPath``, ``format``, ``size``,
        ``checksum``, ...) as a dict, or, with ``wait=False``, the job's id at once (read it with :meth:`job`).
        ``auth``: ``{"type": "basic", "username", "password"}`` or ``{"type": "bearer", "token"}`` for the image
        source. ``wait_timeout`` (seconds) bounds the wait: ``QueueTimeout`` then, the job goes on.
        """
        body = {"host": host, "cache": cache, "href": href, "dest": dest, "wait": bool(wait)}
        _put(body, "forceRaw", force_raw)
        _put(body, "expectedFormat", expected_format)
        _put(body, "expectedChecksum", expected_checksum)
        _put(body, "expectedChecksumAlgo", expected_checksum_algo)
        _put(body, "auth", auth)
        redactor = self._http.redactor.with_secrets(*(auth_secrets(auth) + href_secrets(href)))
        if not wait:
            _, _, answer = self._http.request("POST", "/v1/fetch", body, redactor=redactor)
            return answer["jobId"]
        read_timeout = self._waiting(body, wait_timeout)
        _, _, answer = self._http.request("POST", "/v1/fetch", body, read_timeout=read_timeout, redactor=redactor)
        return answer

    def job(self, job_id):
        """The job: ``{id, queue, name, state, data, progress, attemptsMade, result?, error?, ...}``."""
        _, _, answer = self._http.request("GET", _job_path(job_id))
        return answer

    def cancel(self, job_id):
        """Cancels a job: a waiting one is removed, a running one aborted. ``JobFinished`` if it has ended."""
        _, _, answer = self._http.request("DELETE", _job_path(job_id))
        return answer

    def clean_up(self, host, cache, amount=None, wait_timeout=None):
        """Runs the clean-up of a cache (TTL, size; ``amount`` bytes or ``"500MiB"`` more when given)."""
        body = {"host": host, "cache": cache}
        _put(body, "amount", amount)
        _, _, answer = self._http.request(
            "POST", "/v1/clean-up", body, read_timeout=self._waiting(body, wait_timeout)
        )
        return answer

    def clean_up_caches(self, host, directory, images, wait_timeout=None):
        """Frees room in ``directory`` on ``host`` for ``images`` (hrefs, or ``{"href", "auth"?}`` dicts) by
        cleaning the host's caches on its device, highest priority first; ``InsufficientDiskSpace`` when that is
        not enough (with ``path``, ``required`` and ``free`` in bytes)."""
        listed = [{"href": i} if isinstance(i, str) else dict(i) for i in images]
        secrets = []
        for i in listed:
            secrets += auth_secrets(i.get("auth")) + href_secrets(i.get("href"))
        body = {"host": host, "directory": directory, "images": listed}
        _, _, answer = self._http.request(
            "POST",
            "/v1/clean-up-caches",
            body,
            read_timeout=self._waiting(body, wait_timeout),
            redactor=self._http.redactor.with_secrets(*secrets),
        )
        return answer

    def _waiting(self, body, wait_timeout):
        """Puts the wait's bound in the body; returns how long to wait for the answer (a little longer)."""
        bound = wait_timeout if wait_timeout is not None else self.wait_timeout
        if bound is not None:
            body["timeoutMs"] = int(bound * 1000)
        return (bound if bound is not None else DEFAULT_WAIT_TIMEOUT) + self.timeout


def _put(body, key, value):
    if value is not None:
        body[key] = value


def _job_path(job_id):
    return "/v1/jobs/" + urllib.parse.quote(str(job_id), safe="")
