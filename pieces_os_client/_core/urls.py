"""URL rules: which URLs a request may go to, and how a URL is shown without its credentials."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["checked_origin", "host_problem", "mask_userinfo", "origin_of", "url_problem", "without_userinfo"]

# scheme://user:password@ -> the user:password part
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


def mask_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, safe to show or log.

    >>> mask_userinfo("http://me:secret@127.0.0.1:39300/x")
    'http://***@127.0.0.1:39300/x'
    """
    return _USERINFO.sub(r"\1***@", url) if "@" in url else url


def url_problem(url: str, schemes: Tuple[str, ...] = ("http", "https")) -> Optional[str]:
    """What makes ``url`` unusable as the base URL of Pieces OS (or, with other ``schemes``, as
    a proxy's URL), or ``None`` when it is usable.

    The answer completes a sentence about the value ("host 'x' ..."): "is not a valid URL: ...",
    "is not an http:// or https:// URL with a host", or a :func:`host_problem`.

    >>> url_problem("http://localhost:39300") is None
    True
    >>> url_problem("localhost:39300")
    'is not an http:// or https:// URL with a host'
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        return f"is not a valid URL: {mask_userinfo(str(exc))}"
    if parts.scheme.lower() not in schemes or not parts.hostname:
        names = [f"{scheme}://" for scheme in schemes[:3]]
        listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        return f"is not an {listed} URL with a host"
    return host_problem(parts.hostname)


#: the longest host name DNS can carry (RFC 1035: 255 octets on the wire, 253 written out)
MAX_HOST_NAME = 253
#: the longest label (the part between two dots) of a host name (RFC 1035)
MAX_LABEL = 63


def host_problem(host: str) -> Optional[str]:
    """What makes ``host`` (a URL's host, without brackets) unusable, or ``None``.

    An IP address is usable as it is. A name must fit DNS (at most 253 characters, labels of 1
    to 63), hold no space or control character, and, when it is not ASCII, have an IDNA form.
    These are the checks the system's resolver and the IDNA codec would otherwise fail with a
    codec's message ("label too long") that names neither the setting nor the value.
    """
    try:
        ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
        return None
    except ValueError:
        if ":" in host:
            return f"has a host {host[:60]!r} that is not a valid IPv6 address"
    if any(char.isspace() or not char.isprintable() for char in host):
        return "has a space or a control character in its host name"
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_HOST_NAME:
        return f"has a host name of {len(name)} characters; DNS allows at most {MAX_HOST_NAME}"
    for label in name.split("."):
        if not label:
            return "has an empty label in its host name (two dots in a row, or a dot at the start)"
        if len(label) > MAX_LABEL:
            return (f"has a host name whose label {label[:20] + '...'!r} is {len(label)} characters long; "
                    f"DNS allows at most {MAX_LABEL} between two dots")
    if not name.isascii():
        try:
            name.encode("idna")
        except UnicodeError:
            return "has a host name that cannot be written in IDNA form (a label too long once encoded, or a "\
                   "character host names may not hold)"
    return None


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
