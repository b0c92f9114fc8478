"""Redis URLs as they may be shown: never with their password.

A Redis URL carries its password (``redis://user:PASSWORD@host:6379/0``, or a ``password=``
query parameter), and URLs end up in progress lines, log lines and error messages. Everything
Tailor prints about a URL goes through `redact_url`; text that may quote a password by other
ways (an exception message) goes through `scrub`.

>>> redact_url("rediss://tailor:s3cret@redis:6380/0?ssl_cert_reqs=required")
'rediss://tailor:***@redis:6380/0?ssl_cert_reqs=required'
>>> redact_url("redis://:s3cret@redis:6379/0"), redact_url("unix:///tmp/redis.sock")
('redis://:***@redis:6379/0', 'unix:///tmp/redis.sock')
>>> scrub("AUTH failed for s3cret", "redis://u:s3cret@h/0")
'AUTH failed for ***'
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

__all__ = ["HIDDEN", "malformed_userinfo", "redact_url", "scrub", "url_secrets"]

HIDDEN = "***"
#: Query parameters that hold a secret (redis-py passes unknown ones on as keyword arguments).
_SECRET_QUERY = re.compile(r"(^|&)([^=&]*password[^=&]*)=([^&]*)", re.IGNORECASE)


def malformed_userinfo(url: str) -> bool:
    """Whether an ``@`` sits outside the URL's authority: most likely a user name or password
    holding an unencoded ``/``, ``#`` or ``?``, which a parser reads as host, port, path or
    query (an ``@`` meant for a query value must be percent-encoded too).

    >>> malformed_userinfo("redis://:pa?ss@h:6379/0"), malformed_userinfo("redis://:p%3Fss@h/0")
    (True, False)
    """
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return True
    return "@" in url and "@" not in netloc


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***``; the user name, host, port, db and other
    query parameters are kept, as they are what one needs to see which server is meant.

    A user-info part without a colon is hidden whole: it is a password written without the
    leading ``:`` as often as a user name. A URL whose user-info part does not parse keeps only
    its scheme.
    """
    if "://" not in url:
        return url
    if malformed_userinfo(url):
        return url.split("://", 1)[0] + "://" + HIDDEN
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{HIDDEN}@{host}" if colon else f"{HIDDEN}@{host}"
    query = _SECRET_QUERY.sub(lambda m: f"{m[1]}{m[2]}={HIDDEN}", parts.query)
    return (
        f"{parts.scheme}://{netloc}{parts.path}"
        + (f"?{query}" if query else "")
        + (f"#{parts.fragment}" if parts.fragment else "")
    )


def url_secrets(url: str) -> set[str]:
    """Every spelling of the secrets in `url` (raw and percent-decoded): its password, a
    user-info part without a colon, ``password=`` query values, and for a URL that does not
    parse, everything between the scheme and the last ``@``."""
    if "://" not in url:
        return set()
    after_scheme = url.split("://", 1)[1]
    if malformed_userinfo(url):
        userinfo = after_scheme[: after_scheme.rfind("@")]
        found = {userinfo, userinfo.partition(":")[2]}
    else:
        parts = urlsplit(url)
        userinfo, at, _host = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        found = {password if colon else user} if at else set()
        found |= {m[3] for m in _SECRET_QUERY.finditer(parts.query)}
    return {spelling for raw in found if raw for spelling in (raw, unquote(raw))}


def scrub(text: str, *urls: str) -> str:
    """`text` with each of `urls` redacted and any remaining spelling of their secrets hidden."""
    for url in urls:
        if url:
            text = text.replace(url, redact_url(url))
    secrets = {secret for url in urls if url for secret in url_secrets(url)}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text
