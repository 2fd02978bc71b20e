"""Brute-force protection for the admin login: failed attempts counted in the cache.

Two counters, each over a window of `STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS`
(default 900) that starts at the first failure:

* **per username**: after `STOCKROOM_ADMIN_LOGIN_MAX_FAILURES` (default 5)
  failed logins for one username, from anywhere, that username is refused;
  other usernames are not affected, from the same address or any other. A
  successful login clears it.
* **per client address**: after four times as many failures from one client
  address, whatever usernames were tried, that address is refused for every
  username; other addresses are not affected.

While either counter is at its limit the login answers 429 without checking the
password. The client address is `REMOTE_ADDR`, unless the peer is one of
`STOCKROOM_TRUSTED_PROXIES` (IPs or CIDRs; default none): then it is the
right-most address in `X-Forwarded-For` that is not itself a trusted proxy
(`client_address`). A peer that is not trusted cannot choose its address by
sending the header. IPv6 clients are counted per /64 (one host usually holds a
whole /64).

Counters live in the default cache (Redis in deployments, shared by all web
processes). If Redis is down the limiter fails open, like the rest of the cache:
the login still needs the password. Why not django-axes: it needs its own tables,
an authentication backend that requires `request` in every `authenticate()` call
and middleware, for what is here a small counter.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _limits() -> tuple[int, int]:
    return (
        settings.STOCKROOM_ADMIN_LOGIN_MAX_FAILURES,
        settings.STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS,
    )


@functools.lru_cache(maxsize=8)
def _parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"STOCKROOM_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR network."
            ) from exc
    return tuple(networks)


def trusted_proxies() -> tuple[Network, ...]:
    """`STOCKROOM_TRUSTED_PROXIES` parsed (ImproperlyConfigured for a bad entry)."""
    entries = settings.STOCKROOM_TRUSTED_PROXIES or ()
    if isinstance(entries, str):
        entries = entries.split(",")
    return _parse_networks(tuple(e for e in entries if e.strip()))


def _parse_address(text: str) -> Address | None:
    """An IP address from a header or REMOTE_ADDR entry ("[v6]:port" and "v4:port" too)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(request) -> str:
    """The address the login counters are kept for (see the module docstring)."""
    peer_text = request.META.get("REMOTE_ADDR", "")
    peer = _parse_address(peer_text)
    proxies = trusted_proxies()
    chosen_text, chosen = peer_text, peer
    if _is_trusted(peer, proxies):
        header = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # Walk from the right (the hop our proxy appended) past further trusted
        # proxies; the first address not trusted is the client. Anything to its
        # left was written by the client and is ignored.
        for hop in reversed([h for h in header.split(",") if h.strip()]):
            chosen_text, chosen = hop.strip(), _parse_address(hop)
            if not _is_trusted(chosen, proxies):
                break
    if chosen is None:  # not an IP: count it under its own (bounded) name
        return "raw:" + hashlib.sha256(chosen_text.encode()).hexdigest()[:32]
    if isinstance(chosen, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((chosen, 64), strict=False))
    return str(chosen)


def _keys(request) -> tuple[str, str]:
    username = (request.POST.get("username") or "").strip().lower()
    user_hash = hashlib.sha256(username.encode()).hexdigest()[:32]
    return (
        f"admin-login-fail:user:{user_hash}",
        f"admin-login-fail:addr:{client_address(request)}",
    )


def is_locked_out(request) -> bool:
    max_failures, _ = _limits()
    user_key, addr_key = _keys(request)
    counts = cache.get_many([user_key, addr_key])
    return counts.get(user_key, 0) >= max_failures or counts.get(addr_key, 0) >= 4 * max_failures


def record_failure(request) -> None:
    _, window = _limits()
    for key in _keys(request):
        # add() starts the window; incr() never extends it.
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, timeout=window)


def record_success(request) -> None:
    cache.delete(_keys(request)[0])
