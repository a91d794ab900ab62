"""URL rules: which URLs a request may go to, and how a URL is shown without its credentials."""

from __future__ import annotations

import functools
import re

__all__ = ["checked_origin", "mask_userinfo", "origin_of", "without_userinfo"]

# scheme://user:password@ -> the user:password part
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


def mask_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, safe to show or log.

    >>> mask_userinfo("http://me:secret@127.0.0.1:39300/x")
    'http://***@127.0.0.1:39300/x'
    """
    return _USERINFO.sub(r"\1***@", url) if "@" in url else url


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` left out: what a request is made to.

    Pieces OS takes no credentials in the URL and the transports never send them, so the part
    is dropped before the URL reaches a request, a message, a log line or an exception.

    >>> without_userinfo("http://me:secret@127.0.0.1:39300/x")
    'http://127.0.0.1:39300/x'
    """
    return _USERINFO.sub(r"\1", url) if "@" in url else url


def origin_of(url: str) -> str:
    """The scheme://host:port part of ``url``; ApiValueError for a URL no request can go to."""
    # Requests of one client share a handful of origins: parse and check each only once.
    return checked_origin("/".join(url.split("/", 3)[:3]))


@functools.lru_cache(maxsize=64)
def checked_origin(url: str) -> str:
    import urllib3

    from pieces_os_client.exceptions import ApiValueError

    shown = mask_userinfo(url)
    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationValueError as exc:
        # urllib3 quotes the whole URL for some faults (a port above 65535): credentials and all
        userinfo = _USERINFO.match(url)
        secret = userinfo.group(2) + "@" if userinfo else ""
        detail = str(exc)
        if secret and secret in detail:
            error = ApiValueError(f"{shown!r} is not a valid URL: {detail.replace(secret, '***@')}. "
                                  "Check Configuration.host.")
            raise error from None  # urllib3's error, kept as the cause, would show them again
        raise ApiValueError(f"{shown!r} is not a valid URL: {detail}. Check Configuration.host.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiValueError(
            f"{shown!r} is not an http:// or https:// URL with a host. "
            "Check Configuration.host (for example http://localhost:39300)."
        )
    return f"{parsed.scheme}://{parsed.netloc}"  # urllib3's netloc leaves out any user:password
