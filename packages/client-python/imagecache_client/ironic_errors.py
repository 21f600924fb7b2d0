"""This client's errors as OpenStack Ironic's own exception classes, so a conductor's handlers keep working.

Without Ironic importable, the client's errors are raised as they are (they carry the same names).
"""

from . import errors
from .redact import Redactor

try:  # pragma: no cover - depends on the machine
    from ironic.common import exception as _ironic
except ImportError:  # Ironic is not installed: the client's own classes are raised
    _ironic = None

MIB = 1024 * 1024


def ironic_available():
    return _ironic is not None


def to_ironic(err, href=None):
    """Ironic's exception for a client error (the client's error itself without Ironic).

    The Ironic exception keeps the client's ``code`` as ``imagecache_code`` (Ironic's own ``code`` attribute is an
    HTTP status) and the client's error as ``__cause__``; its text names the href with credentials removed.
    """
    if _ironic is None or not isinstance(err, errors.ImageCacheError):
        return err
    safe_href = err.href or (Redactor().text(href) if href is not None else None) or "(unknown)"
    reason = err.message
    if isinstance(err, errors.InsufficientDiskSpace):
        ironic_err = _ironic.InsufficientDiskSpace(
            path=err.path,
            required=(err.required or 0) / MIB,
            actual=(err.free or 0) / MIB,
        )
    elif isinstance(err, errors.ImageChecksumError):
        ironic_err = _ironic.ImageChecksumError(reason)
    elif isinstance(err, errors.ImageChecksumAlgorithmFailure):
        ironic_err = _ironic.ImageChecksumAlgorithmFailure(reason)
    elif isinstance(err, errors.InvalidImage):
        # Unsafe, not permitted or mismatching formats: Ironic's image inspection raises InvalidImage for each.
        ironic_err = _ironic.InvalidImage(reason)
    elif isinstance(err, errors.ImageConvertFailed):
        ironic_err = _ironic.ImageConvertFailed(image_id=safe_href, reason=reason)
    elif isinstance(err, errors.InvalidHref):
        ironic_err = _ironic.ImageRefValidationFailed(image_href=safe_href, reason=reason)
    elif isinstance(err, errors.ImageNotFound):
        ironic_err = _ironic.ImageNotFound(image_id=safe_href)
    elif isinstance(err, errors.ImageAuthRequired):
        ironic_err = _ironic.ImageNotAuthorized(image_id=safe_href)
    elif isinstance(err, (errors.InvalidDestination, errors.UsageError)):
        ironic_err = _ironic.InvalidParameterValue(err=reason)
    else:
        # The source failed, or imagecache could not serve (no worker, queue down, API unreachable, cancelled,
        # timed out): to a conductor each is a download that failed.
        ironic_err = _ironic.ImageDownloadFailed(image_href=safe_href, reason=reason)
    ironic_err.imagecache_code = err.code
    ironic_err.retryable = err.retryable
    ironic_err.__cause__ = err
    return ironic_err
