"""A drop-in for OpenStack Ironic's master image cache (``ironic.drivers.modules.image_cache``, 21.4.4).

A conductor changes one import in each module that defines or uses a cache::

    from ironic.drivers.modules import image_cache              # before
    from imagecache_client import ironic as image_cache         # after

and its caches (``InstanceImageCache``, ``TFTPImageCache``, ``ISOImageCache``, all subclasses of
``image_cache.ImageCache``) then fetch through imagecache's workers on the conductor's host. Where Ironic's own
module stays imported (``deploy_utils.fetch_images`` calls ``image_cache.clean_up_caches``, the conductor's
periodic task ``image_cache.clean_up_all``), :func:`route_ironic_clean_up` sends those through imagecache too, so
Ironic never evicts files behind the cache's back.

Which API, host and cache: :func:`configure`, or the environment (``IMAGECACHE_URL``, ``IMAGECACHE_USERNAME``,
``IMAGECACHE_PASSWORD`` or ``IMAGECACHE_PASSWORD_FILE``, ``IMAGECACHE_HOST`` (default: this machine's host name, as
the worker's), ``IMAGECACHE_CACHES``: ``MASTER_DIR=CACHE,...``, the worker's cache name of each Ironic master
folder).

Errors are Ironic's own exception classes when Ironic is importable (see :mod:`imagecache_client.ironic_errors`).
"""

import contextlib
import os
import socket
import threading
import weakref

from . import errors
from .client import Client
from .ironic_errors import to_ironic

__all__ = [
    "ImageCache",
    "clean_up_caches",
    "clean_up_all",
    "cleanup",
    "configure",
    "route_ironic_clean_up",
]

_lock = threading.Lock()
_settings = None
# The drop-in caches alive, by master folder: clean_up_caches(ctx, cache.master_dir, ...) finds its cache's API.
_live = weakref.WeakValueDictionary()


class _Settings:
    def __init__(self, client, host, caches):
        self.client = client
        self.host = host
        self.caches = {_norm(d): name for d, name in (caches or {}).items()}


def configure(client=None, host=None, caches=None):
    """Sets the defaults of every drop-in cache: ``client`` (a :class:`Client`), ``host`` (the worker host that
    serves this conductor) and ``caches`` ({Ironic master folder: imagecache cache name}). Unset ones come from
    the environment."""
    global _settings
    with _lock:
        env = _from_environment()
        _settings = _Settings(
            client if client is not None else env.client,
            host if host is not None else env.host,
            caches if caches is not None else env.caches,
        )
    return _settings


def _defaults():
    global _settings
    with _lock:
        if _settings is None:
            _settings = _from_environment()
        return _settings


def _from_environment():
    url = os.environ.get("IMAGECACHE_URL")
    password = os.environ.get("IMAGECACHE_PASSWORD")
    password_file = os.environ.get("IMAGECACHE_PASSWORD_FILE")
    if password_file:
        with open(password_file, encoding="utf-8") as f:
            password = f.read().rstrip("\r\n")
    client = Client(url, os.environ.get("IMAGECACHE_USERNAME"), password) if url else None
    caches = {}
    for item in filter(None, (os.environ.get("IMAGECACHE_CACHES") or "").split(",")):
        folder, sep, name = item.strip().rpartition("=")
        if not sep or not folder or not name:
            raise errors.ConfigError("IMAGECACHE_CACHES: %r is not MASTER_DIR=CACHE" % item)
        caches[folder] = name
    return _Settings(client, os.environ.get("IMAGECACHE_HOST") or socket.gethostname(), caches)


class ImageCache(object):
    """Ironic's ``ImageCache``, served by imagecache's workers on ``host`` through cache ``cache``.

    ``master_dir``: the worker's master folder of that cache (the folder Ironic's configuration names); it is
    where ``clean_up_caches`` measures free space, and, when ``cache`` is not given, the key of ``configure``'s
    ``caches``. ``cache_size`` and ``cache_ttl`` are kept for Ironic's callers only: the worker's configuration
    (``caches[].cacheSize``, ``cacheTtl``) rules. Nothing is created on disk: the folder is the worker's.
    """

    def __init__(
        self,
        master_dir=None,
        cache_size=None,
        cache_ttl=None,
        disable_validation=False,
        force_raw=None,
        *,
        client=None,
        host=None,
        cache=None,
    ):
        settings = _defaults()
        self.master_dir = master_dir
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        # Newer Ironic's arguments: `force_raw` is the default of fetch_image; validation is the worker cache's
        # (`caches[].validate`), whatever a caller asks.
        self._disable_validation = disable_validation
        self._force_raw = force_raw
        self.client = client if client is not None else settings.client
        self.host = host if host is not None else settings.host
        self.cache = cache if cache is not None else settings.caches.get(_norm(master_dir))
        if self.client is None:
            raise errors.ConfigError(
                "no imagecache API: pass client=Client(url, ...), call imagecache_client.ironic.configure(), "
                "or set IMAGECACHE_URL"
            )
        if not self.cache:
            raise errors.ConfigError(
                "no imagecache cache for master folder %s: pass cache=NAME, or map the folder to a cache "
                "(configure(caches={folder: name}) or IMAGECACHE_CACHES=folder=name)" % master_dir
            )
        self.last_result = None
        if master_dir:
            _live[_norm(master_dir)] = self

    def fetch_image(
        self,
        href,
        dest_path,
        ctx=None,
        force_raw=None,
        expected_format=None,
        expected_checksum=None,
        expected_checksum_algo=None,
        image_auth_data=None,
    ):
        """Makes ``href`` appear at ``dest_path`` (a hard link to the master when possible) and returns the
        image's format as placed (``raw`` after a conversion; None for a cache that does not inspect).
        ``force_raw`` None: the constructor's, else the worker cache's configuration decides. ``ctx`` is not
        used: the worker holds the image service's credentials. ``image_auth_data`` (newer Ironic):
        ``{"username", "password"}`` or ``{"token"}`` for the image source."""
        with _as_ironic(href):
            result = self.client.fetch(
                self.host,
                self.cache,
                href,
                os.path.abspath(dest_path),
                force_raw=force_raw if force_raw is not None else self._force_raw,
                expected_format=expected_format,
                expected_checksum=expected_checksum,
                expected_checksum_algo=expected_checksum_algo,
                auth=_auth(image_auth_data),
            )
        self.last_result = result
        return result.get("format")

    def clean_up(self, amount=None):
        """The cache's clean-up, by its worker (``amount``: bytes to free beyond TTL and size)."""
        with _as_ironic():
            return self.client.clean_up(self.host, self.cache, amount=amount)


def clean_up_caches(ctx, directory, images_info, image_auth_data=None):
    """Ironic's ``clean_up_caches``: frees room in ``directory`` for ``images_info`` (``[(href, path), ...]``) by
    cleaning the host's caches on its device, highest priority first, in the worker; raises Ironic's
    ``InsufficientDiskSpace`` (sizes in MiB, as Ironic's) when that is not enough.

    The API and host are those of the drop-in cache whose ``master_dir`` is ``directory`` (as
    ``deploy_utils.fetch_images`` calls it), else :func:`configure`'s. Without a ``directory``, the first
    destination's folder is measured."""
    images_info = list(images_info)
    if not images_info:
        return None
    owner = _live.get(_norm(directory)) if directory else None
    settings = _defaults()
    client = owner.client if owner else settings.client
    host = owner.host if owner else settings.host
    where = directory or os.path.dirname(os.path.abspath(images_info[0][1]))
    with _as_ironic(images_info[0][0] if len(images_info) == 1 else None):
        if client is None:
            raise errors.ConfigError("no imagecache API configured: call configure() or set IMAGECACHE_URL")
        auth = _auth(image_auth_data)
        images = [{"href": href, "auth": auth} if auth else href for href, _path in images_info]
        return client.clean_up_caches(host, os.path.abspath(where), images)


def clean_up_all():
    """Ironic's periodic ``clean_up_all``: the clean-up of every configured cache, by its worker (the worker's
    own periodic sweep does the same; this keeps the conductor's task from touching the folders itself)."""
    settings = _defaults()
    if settings.client is None:
        return
    first = None
    for name in sorted(set(settings.caches.values())):
        # One cache's failure (its worker down) does not keep the others from being cleaned.
        try:
            with _as_ironic():
                settings.client.clean_up(settings.host, name)
        except Exception as err:  # noqa: BLE001 - raised below, once every cache was tried
            first = first or err
    if first is not None:
        raise first


def cleanup(priority):
    """Ironic's class decorator registering a cache with a clean-up priority. The order of clean-up is the
    worker's (``caches[].priority`` in the host's configuration), so this only returns the class."""

    def register(cls):
        cls.imagecache_priority = priority
        return cls

    return register


def route_ironic_clean_up():
    """The one line that sends Ironic's module-level clean-ups through imagecache: afterwards
    ``ironic.drivers.modules.image_cache.clean_up_caches`` (called by ``deploy_utils.fetch_images``) and
    ``clean_up_all`` (the conductor's periodic task) are this module's, so Ironic never removes a master itself.
    Returns a function that restores Ironic's own."""
    from ironic.drivers.modules import image_cache as ironic_image_cache

    if ironic_image_cache.clean_up_caches is clean_up_caches:
        return lambda: None  # routed already: the first call's restore puts Ironic's back
    saved = (ironic_image_cache.clean_up_caches, ironic_image_cache.clean_up_all)
    ironic_image_cache.clean_up_caches = clean_up_caches
    ironic_image_cache.clean_up_all = clean_up_all

    def restore():
        ironic_image_cache.clean_up_caches, ironic_image_cache.clean_up_all = saved

    return restore


@contextlib.contextmanager
def _as_ironic(href=None):
    """Raises a client error as Ironic's exception (as it is when Ironic is not importable)."""
    try:
        yield
    except errors.ImageCacheError as err:
        mapped = to_ironic(err, href)
        if mapped is err:
            raise
        raise mapped from err


def _auth(image_auth_data):
    """The API's `auth` of newer Ironic's `image_auth_data`."""
    if not image_auth_data:
        return None
    if image_auth_data.get("type") in ("basic", "bearer"):
        return dict(image_auth_data)
    if image_auth_data.get("token"):
        return {"type": "bearer", "token": image_auth_data["token"]}
    if image_auth_data.get("username") is not None:
        return {"type": "basic", "username": image_auth_data["username"], "password": image_auth_data.get("password", "")}
    raise errors.UsageError("image_auth_data must hold a username and password, or a token")


def _norm(folder):
    return os.path.normpath(os.path.abspath(folder)) if folder else None
