"""A standard-library client of the imagecache HTTP API, and (:mod:`imagecache_client.ironic`) a drop-in for
OpenStack Ironic's master image cache."""

from .client import Client
from .errors import *  # noqa: F401,F403 - every error class is public
from .errors import ERROR_CLASSES, ImageCacheError, error_class

__all__ = ["Client", "ERROR_CLASSES", "error_class"] + sorted(
    cls.__name__ for cls in ERROR_CLASSES.values()
)
__version__ = "0.1.0"
