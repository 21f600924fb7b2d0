"""HTTP to the imagecache API with the standard library: JSON bodies, basic auth, bounded retries."""

import base64
import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from . import errors
from .redact import Redactor


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The API never redirects: following one would send the Authorization header to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Transport:
    """Sends one request and returns (status, headers, JSON body), or raises the API's error as its class.

    Retried, ``retries`` times with exponential backoff: a connection that could not be made or was dropped
    before an answer, and 503 (the API could not queue: nothing was queued). Never retried: a request that timed
    out waiting for its answer (the job may be running) and every other status.
    """

    def __init__(self, url, username=None, password=None, timeout=30.0, retries=3, backoff=0.5, redactor=None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.UsageError("the API's URL must be http(s)://host[:port], got %s" % Redactor().text(url))
        # Credentials in the URL are taken out of it: the URL then shows in errors as it is.
        if parts.username is not None and username is None:
            username = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
        netloc = parts.hostname if ":" not in parts.hostname else "[%s]" % parts.hostname
        if parts.port:
            netloc += ":%d" % parts.port
        self.base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.redactor = (redactor or Redactor()).with_secrets(password)
        self._authorization = None
        if username is not None:
            token = base64.b64encode(("%s:%s" % (username, password or "")).encode("utf-8")).decode("ascii")
            self._authorization = "Basic " + token
            self.redactor = self.redactor.with_secrets(token)
        # No proxy from the environment (the API is an internal service), no redirects.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())

    def request(self, method, path, body=None, read_timeout=None, redactor=None):
        redactor = redactor or self.redactor
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self._authorization:
            headers["Authorization"] = self._authorization
        url = self.base + path
        timeout = self.timeout if read_timeout is None else read_timeout
        last = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with self._opener.open(req, timeout=timeout) as resp:
                    status, answer = resp.status, _json(resp.read())
                    if answer is None:
                        raise errors.ImageCacheError(
                            "the imagecache API at %s answered %d without a JSON body (%s %s)"
                            % (self.base, status, method, _path_only(path)),
                            status=status,
                        )
                    return status, resp.headers, answer
            except urllib.error.HTTPError as e:
                status, payload = e.code, _json(_read(e))
                err = _api_error(status, payload, redactor)
                if status == 503 and attempt < self.retries:
                    last = err
                    continue
                raise err from None
            except urllib.error.URLError as e:
                # Raised before a request was sent (refused, unreachable, DNS, connect timeout): safe to retry.
                last = e.reason
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # Dropped before any answer: the API was going down or restarting. The request may have been
                # received, though: only a GET or DELETE is sent again (a POST could queue a second job).
                if method not in ("GET", "DELETE"):
                    raise errors.ApiUnavailable(
                        redactor.text(
                            "the imagecache API at %s dropped the connection before answering (%s %s): %s; "
                            "the request may have been queued"
                            % (self.base, method, _path_only(path), _describe(e))
                        )
                    ) from None
                last = e
            except (socket.timeout, TimeoutError):
                raise errors.ApiTimeout(
                    "no answer from the imagecache API at %s within %s s (%s %s); a job it queued may still "
                    "finish" % (self.base, timeout, method, _path_only(path)),
                ) from None
            except (http.client.HTTPException, OSError) as e:
                # The answer broke off midway (a truncated body, a protocol error): not retried, it may have
                # been acted on.
                raise errors.ApiUnavailable(
                    redactor.text(
                        "the answer of the imagecache API at %s broke off (%s %s): %s"
                        % (self.base, method, _path_only(path), _describe(e))
                    )
                ) from None
        if isinstance(last, errors.ImageCacheError):
            raise last
        raise errors.ApiUnavailable(
            redactor.text(
                "the imagecache API at %s could not be reached after %d attempt%s (%s %s): %s"
                % (self.base, self.retries + 1, "" if self.retries == 0 else "s", method, _path_only(path),
                   _describe(last))
            )
        ) from None


def _api_error(status, payload, redactor):
    """The exception of an error answer `{"error": {code, message, retryable?, details?, jobId?}}`."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return errors.ImageCacheError(
            "the imagecache API answered %d without an error body" % status,
            status=status,
            retryable=status >= 500,
        )
    code = body["code"]
    cls = errors.error_class(code)
    return cls(
        redactor.text(str(body.get("message", code))),
        status=status,
        details=redactor.value(body.get("details") or {}),
        job_id=body.get("jobId"),
        retryable=body.get("retryable"),
        code=code if cls is errors.ImageCacheError else None,
    )


def _read(response):
    try:
        return response.read()
    except Exception:  # noqa: BLE001 - an unreadable error body is an error without details
        return b""
    finally:
        response.close()


def _json(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _path_only(path):
    return path.split("?", 1)[0]


def _describe(reason):
    if isinstance(reason, BaseException):
        text = str(reason) or type(reason).__name__
        return "%s: %s" % (type(reason).__name__, text) if not text.startswith(type(reason).__name__) else text
    return str(reason)
