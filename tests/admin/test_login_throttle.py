"""The admin login lockout behind a TLS proxy: per client address and per username.

Every test logs in through the real admin login view; counters are in the test
Redis (flushed per test). MAX_FAILURES = 2 here, so a username locks after 2
failures and a client address after 8 (four times as many).
"""

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.urls import reverse

from backoffice.login_throttle import client_address

from ..factories import StaffUserFactory

URL = reverse("admin:login")
PROXY = "10.0.0.5"  # the TLS proxy, in the trusted 10.0.0.0/8
CLIENT_A = "203.0.113.7"
CLIENT_B = "198.51.100.9"


@pytest.fixture(autouse=True)
def limits(settings):
    settings.STOCKROOM_ADMIN_LOGIN_MAX_FAILURES = 2
    settings.STOCKROOM_ADMIN_LOGIN_LOCKOUT_SECONDS = 900


@pytest.fixture
def behind_proxy(settings):
    settings.STOCKROOM_TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::1"]


@pytest.fixture
def staff(db):
    StaffUserFactory(username="wanda")  # password "staff-password"
    StaffUserFactory(username="bert")


def login(username, password="guess", *, peer=PROXY, forwarded=None) -> int:
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return Client().post(URL, {"username": username, "password": password}, **headers).status_code


def fail_from_address(count: int, **where) -> None:
    """`count` failed logins, each for a different (unknown) username."""
    for n in range(count):
        assert login(f"nobody-{n}", **where) == 200


def test_behind_a_trusted_proxy_bad_logins_from_one_client_do_not_lock_another(staff, behind_proxy):
    fail_from_address(8, forwarded=CLIENT_A)
    # Client A is locked out, even with the right password for an untouched account...
    assert login("wanda", "staff-password", forwarded=CLIENT_A) == 429
    # ...while B, behind the same proxy (same REMOTE_ADDR), logs in.
    assert login("wanda", "staff-password", forwarded=CLIENT_B) == 302
    assert login("bert", "staff-password", forwarded=f"192.0.2.1, {CLIENT_B}") == 302


def test_without_trusted_proxies_every_client_behind_the_proxy_shares_its_address(staff):
    """The default (no STOCKROOM_TRUSTED_PROXIES): REMOTE_ADDR only, the header ignored.
    This is the behaviour the setting exists to fix when a proxy is in front."""
    fail_from_address(8, forwarded=CLIENT_A)
    assert login("wanda", "staff-password", forwarded=CLIENT_B) == 429
    assert login("wanda", "staff-password", peer="192.0.2.44") == 302  # another peer


def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(staff, behind_proxy):
    attacker = "192.0.2.66"  # connects directly, not through the proxy
    for n in range(8):  # a fresh spoofed address every time
        assert login(f"nobody-{n}", peer=attacker, forwarded=f"198.18.0.{n}") == 200
    assert login("wanda", "staff-password", peer=attacker, forwarded="198.18.0.200") == 429
    # The addresses it claimed are not locked, and the proxy's clients are not either.
    assert login("wanda", "staff-password", forwarded="198.18.0.1") == 302


def test_addresses_a_client_prepends_to_the_header_are_ignored(staff, behind_proxy):
    """The proxy appends the address it saw; what the client wrote to its left is not used."""
    for n in range(8):
        assert login(f"nobody-{n}", forwarded=f"198.18.0.{n}, {CLIENT_A}") == 200
    assert login("wanda", "staff-password", forwarded=f"198.18.0.99, {CLIENT_A}") == 429
    assert login("wanda", "staff-password", forwarded=CLIENT_B) == 302


def test_a_username_locks_alone_not_other_users_from_the_same_address(staff, behind_proxy):
    for _ in range(2):
        assert login("wanda", forwarded=CLIENT_A) == 200
    # Wanda is locked, wherever she tries from (the per-username limit guards
    # against guessing her password from many addresses)...
    assert login("wanda", "staff-password", forwarded=CLIENT_A) == 429
    assert login("wanda", "staff-password", forwarded=CLIENT_B) == 429
    assert login("Wanda ", "staff-password", forwarded=CLIENT_B) == 429  # same username
    # ...but Bert, from the very same client address, is not.
    assert login("bert", "staff-password", forwarded=CLIENT_A) == 302


def test_the_lockout_still_stops_a_guesser_and_its_window_is_not_extended(staff, behind_proxy):
    for _ in range(2):
        assert login("wanda", forwarded=CLIENT_A) == 200
    for _ in range(5):  # refused without a password check, and not counted further
        assert login("wanda", forwarded=CLIENT_A) == 429
    from django.core.cache import cache

    keys = cache.keys("admin-login-fail:*")
    assert sorted(cache.get(k) for k in keys) == [2, 2]  # the username and the address
    assert all(0 < cache.ttl(k) <= 900 for k in keys)


def rf_request(peer, forwarded=None):
    extra = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().post(URL, {}, **extra)


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        (PROXY, None, PROXY),  # a trusted peer without the header is the client
        (PROXY, "", PROXY),
        (PROXY, CLIENT_A, CLIENT_A),
        (PROXY, f"{CLIENT_B}, {CLIENT_A}", CLIENT_A),  # right-most untrusted
        (PROXY, f"{CLIENT_A}, 10.9.9.9", CLIENT_A),  # a second trusted hop is skipped
        (PROXY, "10.1.1.1, 10.2.2.2", "10.1.1.1"),  # all trusted: the left-most
        (PROXY, f" {CLIENT_A}:51234 ", CLIENT_A),  # a port is dropped
        (PROXY, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),  # IPv6 counted per /64
        (PROXY, "[2001:db8:1:2::9]:443", "2001:db8:1:2::/64"),
        (PROXY, "::ffff:203.0.113.7", CLIENT_A),  # IPv4-mapped
        ("2001:db8:ffff::1", CLIENT_A, CLIENT_A),  # a trusted IPv6 proxy
        ("192.0.2.66", CLIENT_A, "192.0.2.66"),  # untrusted peer: header ignored
    ],
)
def test_client_address(behind_proxy, peer, forwarded, expected):
    assert client_address(rf_request(peer, forwarded)) == expected


def test_a_forwarded_entry_that_is_not_an_address_is_counted_under_its_own_name(behind_proxy):
    first = client_address(rf_request(PROXY, "unknown"))
    assert first.startswith("raw:") and len(first) == 36
    assert client_address(rf_request(PROXY, "unknown")) == first
    assert client_address(rf_request(PROXY, "garbage")) != first


def test_no_trusted_proxies_means_remote_addr(settings):
    settings.STOCKROOM_TRUSTED_PROXIES = []
    assert client_address(rf_request(PROXY, CLIENT_A)) == PROXY


def test_a_bad_trusted_proxy_entry_is_a_configuration_error(settings):
    settings.STOCKROOM_TRUSTED_PROXIES = ["10.0.0.0/8", "proxy.internal"]
    with pytest.raises(ImproperlyConfigured, match=r"proxy\.internal"):
        client_address(rf_request(PROXY, CLIENT_A))
    errors = [e for e in run_checks() if e.id == "backoffice.E001"]
    assert len(errors) == 1 and "proxy.internal" in errors[0].msg
