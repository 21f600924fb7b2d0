"""The errors of the imagecache API as Python exceptions: one class per code, one base with ``code``.

The codes and classes mirror packages/errors (the engine's) and apps/api/src/errors.ts (the HTTP layer's); the
client adds only the codes of what happens before an answer arrives (``API_UNAVAILABLE``, ``API_TIMEOUT``).
"""


class ImageCacheError(Exception):
    """Base of every error of this client.

    ``code`` is the API's stable code, ``retryable`` whether the same request may succeed later, ``status`` the
    HTTP status (None when no answer came), ``details`` the API's details, ``job_id`` the job concerned if any.
    """

    code = "IMAGECACHE_ERROR"
    retryable = False

    def __init__(self, message, status=None, details=None, job_id=None, retryable=None, code=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = dict(details or {})
        self.job_id = job_id
        if retryable is not None:
            self.retryable = bool(retryable)
        if code is not None:
            # An answer with a code this client does not know yet keeps it.
            self.code = code

    @property
    def href(self):
        """The href concerned, credentials removed (as the API quoted it)."""
        return self.details.get("href")

    def __str__(self):
        return self.message

    def __repr__(self):
        return "%s(code=%r, message=%r)" % (type(self).__name__, self.code, self.message)


# --- the engine's errors (packages/errors/src/errors.ts) ---------------------------------------------------------


class InvalidHref(ImageCacheError):
    code = "INVALID_HREF"


class ImageRefValidationFailed(InvalidHref):
    code = "IMAGE_REF_VALIDATION_FAILED"


class InvalidDestination(ImageCacheError):
    code = "INVALID_DESTINATION"


class UsageError(ImageCacheError):
    code = "USAGE_ERROR"


class ImageNotFound(ImageCacheError):
    code = "IMAGE_NOT_FOUND"


class ImageAuthRequired(ImageCacheError):
    code = "IMAGE_AUTH_REQUIRED"


class ImageNotAuthorized(ImageAuthRequired):
    code = "IMAGE_NOT_AUTHORIZED"


class ImageDownloadFailed(ImageCacheError):
    code = "IMAGE_DOWNLOAD_FAILED"
    retryable = True


class ImageChecksumError(ImageCacheError):
    code = "IMAGE_CHECKSUM_ERROR"


class ImageChecksumAlgorithmFailure(ImageCacheError):
    code = "IMAGE_CHECKSUM_ALGORITHM_FAILURE"


class InvalidImage(ImageCacheError):
    code = "INVALID_IMAGE"


class UnsafeImage(InvalidImage):
    code = "UNSAFE_IMAGE"


class ImageFormatNotPermitted(InvalidImage):
    code = "IMAGE_FORMAT_NOT_PERMITTED"


class ImageFormatMismatch(InvalidImage):
    code = "IMAGE_FORMAT_MISMATCH"


class ImageConvertFailed(ImageCacheError):
    code = "IMAGE_CONVERT_FAILED"


class InsufficientDiskSpace(ImageCacheError):
    """``path`` lacks space: ``required`` and ``free`` are bytes."""

    code = "INSUFFICIENT_DISK_SPACE"

    def __init__(self, message, status=None, details=None, job_id=None, retryable=None, code=None):
        super().__init__(message, status, details, job_id, retryable, code)
        self.path = self.details.get("path")
        self.required = _number(self.details.get("required"))
        self.free = _number(self.details.get("free"))


class CacheFolderUnusable(ImageCacheError):
    code = "CACHE_FOLDER_UNUSABLE"


class ConfigError(ImageCacheError):
    code = "CONFIG_ERROR"


class QueueUnavailable(ImageCacheError):
    code = "QUEUE_UNAVAILABLE"
    retryable = True


class QueueTimeout(ImageCacheError):
    code = "QUEUE_TIMEOUT"
    retryable = True


class CredentialsExpired(ImageCacheError):
    code = "CREDENTIALS_EXPIRED"


class CredentialsNotOwned(ImageCacheError):
    code = "CREDENTIALS_NOT_OWNED"


class NoWorker(ImageCacheError):
    code = "NO_WORKER"
    retryable = True


class OperationAborted(ImageCacheError):
    code = "ABORTED"
    retryable = True


# --- the HTTP layer's errors (apps/api/src/errors.ts) ------------------------------------------------------------


class InvalidRequest(ImageCacheError):
    code = "INVALID_REQUEST"


class JobNotFound(ImageCacheError):
    code = "JOB_NOT_FOUND"


class JobFinished(ImageCacheError):
    code = "JOB_FINISHED"


class NotFound(ImageCacheError):
    code = "NOT_FOUND"


class Unauthorized(ImageCacheError):
    code = "UNAUTHORIZED"


class Forbidden(ImageCacheError):
    code = "FORBIDDEN"


# --- this client's own: no answer came ---------------------------------------------------------------------------


class ApiUnavailable(ImageCacheError):
    """The API could not be reached (refused, reset, or 503) after the client's bounded retries."""

    code = "API_UNAVAILABLE"
    retryable = True


class ApiTimeout(ImageCacheError):
    """The API did not answer within the client's time limit; a job it queued may still finish."""

    code = "API_TIMEOUT"
    retryable = True


def _all_classes(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_classes(sub)


ERROR_CLASSES = {cls.code: cls for cls in _all_classes(ImageCacheError)}
ERROR_CLASSES[ImageCacheError.code] = ImageCacheError


def error_class(code):
    """The class of a code; the base class for a code this client does not know."""
    return ERROR_CLASSES.get(code, ImageCacheError)


def _number(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
