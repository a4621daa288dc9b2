"""X-Forwarded-For is believed only from INFUSION_TRUSTED_PROXIES, and only a valid IP address
is ever used as the client's address (throttle keys, audit trail).

`production_like` is an app that trusts no proxy (the default); `http` is the tests' usual
app, which trusts 127.0.0.1 as its proxy (tests/conftest.py).
"""

from __future__ import annotations

import pytest

from core.identity.throttle import Throttle
from tests.api.test_auth_support import PASSWORD, audit_events, login, make_user

XSS = "<img src=x onerror=alert(1)>"


def logged_in_from(events: list[dict]) -> list[str]:
    return [e["after"]["client"] for e in events if e["action"] == "user.logged_in"]


# ---------------------------------------------------------------- from an untrusted peer


async def test_forged_addresses_do_not_walk_around_the_login_throttle(production_like, redis):
    await make_user("tess", "technician")
    for i in range(5):  # INFUSION_LOGIN_MAX_FAILURES defaults to 5
        forged = {"x-forwarded-for": f"10.7.7.{i}"}
        response = await login(production_like, "tess", "not the right password", **forged)
        assert response.status_code == 401

    refused = await login(production_like, "tess", PASSWORD, **{"x-forwarded-for": "10.7.7.99"})

    assert refused.status_code == 429
    # Every attempt was counted against the peer's own address, none against a forged one.
    assert await redis.get(Throttle(1, 1).key("tess", "127.0.0.1")) == b"6"
    assert await redis.get(Throttle(1, 1).key("tess", "10.7.7.99")) is None
    # The trail names the peer's own address on every failure and on the lockout, never a
    # forged one.
    events = await audit_events()
    assert [(e["action"], e["after"]["client"]) for e in events] == [
        *[("user.sign_in_failed", "127.0.0.1")] * 5,
        ("user.sign_in_locked", "127.0.0.1"),
    ]


@pytest.mark.parametrize("forged", [XSS, "10.8.8.8", "10.8.8.8, 10.9.9.9"])
async def test_a_forged_address_never_reaches_the_audit_trail(production_like, forged):
    await make_user("tess", "technician")

    response = await login(production_like, "tess", **{"x-forwarded-for": forged})

    assert response.status_code == 200
    assert logged_in_from(await audit_events()) == ["127.0.0.1"]


# ---------------------------------------------------------------- from a trusted proxy


async def test_a_trusted_proxys_address_is_used_for_throttle_and_audit(http, redis):
    await make_user("tess", "technician")
    browser = {"x-forwarded-for": "10.20.30.40"}

    assert (await login(http, "tess", "not the right password", **browser)).status_code == 401
    assert (await login(http, "tess", **browser)).status_code == 200

    assert logged_in_from(await audit_events()) == ["10.20.30.40"]
    assert await redis.get(Throttle(1, 1).key("tess", "127.0.0.1")) is None


async def test_an_ipv6_address_from_a_trusted_proxy_is_audited_in_its_normal_form(http):
    await make_user("tess", "technician")

    assert (await login(http, "tess", **{"x-forwarded-for": "2001:DB8:0::0001"})).status_code == 200

    assert logged_in_from(await audit_events()) == ["2001:db8::1"]


@pytest.mark.parametrize("passed_on", [XSS, "not-an-address", "10.1.2.3.4"])
async def test_what_is_not_an_ip_address_is_audited_as_unknown(http, passed_on):
    await make_user("tess", "technician")

    response = await login(http, "tess", **{"x-forwarded-for": passed_on})

    assert response.status_code == 200
    assert logged_in_from(await audit_events()) == ["unknown"]
