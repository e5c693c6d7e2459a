"""Where a view may send the browser back to: only a URL of this site (no open redirects)."""

from django.utils.http import url_has_allowed_host_and_scheme


def safe_return_url(request, url: str | None, fallback: str) -> str:
    """`url` (a `next` / return URL from the request, or a stored link) when it points to this
    site, over the request's scheme; else `fallback`. "//evil.example", "https://evil.example/",
    "javascript:..." and backslash tricks all get the fallback."""
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return fallback
