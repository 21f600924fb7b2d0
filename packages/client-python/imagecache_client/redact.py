"""Keeps credentials out of every text this client builds: exception messages, details, reprs.

The API already redacts what it answers; this is the client's own guarantee, also for what never reached the
API (a URL it could not connect to) and for a server that would echo a secret.
"""

import re

# `user:pass@` of any URL in a text.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s]+@")
# Query values whose name says they are secret (as the API's redactHref).
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&;](?:[A-Za-z0-9_.-]*(?:token|sig|signature|password|passwd|secret|key|credential|auth)"
    r"[A-Za-z0-9_.-]*)=)[^&#\s\"']*",
    re.IGNORECASE,
)
MASK = "***"


class Redactor:
    """Replaces known secrets (passwords, tokens) and URL credentials with ***."""

    def __init__(self, secrets=()):
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if isinstance(s, str) and len(s) >= 1}, key=len, reverse=True)

    def with_secrets(self, *more):
        return Redactor(list(self._secrets) + [s for s in more if s])

    def text(self, value):
        if not isinstance(value, str):
            return value
        out = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", value)
        out = _SECRET_QUERY.sub(lambda m: m.group("key") + MASK, out)
        for secret in self._secrets:
            out = out.replace(secret, MASK)
        return out

    def value(self, value):
        """A JSON-like value with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def auth_secrets(auth):
    """The secret parts of an API `auth` object ({type: basic|bearer, ...})."""
    if not isinstance(auth, dict):
        return []
    return [auth.get("password"), auth.get("token")]


def href_secrets(href):
    """The password (and user) of an href's `user:pass@`, so that a server echoing them decoded is caught too."""
    if not isinstance(href, str):
        return []
    m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#@\s]+)@", href)
    if not m:
        return []
    from urllib.parse import unquote

    user, _, password = m.group(1).partition(":")
    found = [m.group(1)]
    if password:
        found += [password, unquote(password)]
    return found
