"""URL -> registered domain ("news.bbc.co.uk" -> "bbc.co.uk"), public-suffix aware and offline.

The public suffix list ships inside the ``publicsuffixlist`` package; nothing is fetched.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

_PSL = PublicSuffixList()


@lru_cache(maxsize=1 << 16)
def _registered(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return _PSL.privatesuffix(host) or host


def registered_domain(url: str | None) -> str | None:
    """The registered domain of a URL, or its host when it has none (IP addresses, localhost).

    >>> registered_domain("https://news.bbc.co.uk/a?b=1")
    'bbc.co.uk'
    >>> registered_domain("not a url") is None
    True
    """
    if not url:
        return None
    try:
        host = urlsplit(url if "//" in url else "//" + url).hostname
    except ValueError:
        return None
    if not host or ("." not in host and ":" not in host and host != "localhost"):
        return None
    return _registered(host.rstrip("."))
