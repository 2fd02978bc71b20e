"""Brute-force protection for the admin login: failed attempts counted in the cache.

After `STOCKROOM_ADMIN_LOGIN_MAX_FAILURES` (default 5) failed logins for one
username, or four times as many from one client address, within
`STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS` (default 900), further attempts are
answered 429 without checking the password until the window has passed. A
successful login clears the username's counter.

Counters live in the default cache (Redis in deployments, shared by all web
processes). If Redis is down the limiter fails open, like the rest of the cache:
the login still needs the password. Why not django-axes: it needs its own tables,
an authentication backend that requires `request` in every `authenticate()` call
and middleware, for what is here a forty-line counter.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _limits() -> tuple[int, int]:
    return (
        getattr(settings, "STOCKROOM_ADMIN_LOGIN_MAX_FAILURES", 5),
        getattr(settings, "STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS", 900),
    )


def _keys(request) -> tuple[str, str]:
    username = (request.POST.get("username") or "").strip().lower()
    user_hash = hashlib.sha256(username.encode()).hexdigest()[:32]
    address = request.META.get("REMOTE_ADDR", "")
    return f"admin-login-fail:user:{user_hash}", f"admin-login-fail:addr:{address}"


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
