"""The password policy as the services apply it: the shipped breached list and the demo rule."""

from __future__ import annotations

import pytest

from core.identity.errors import IdentityPolicyError
from core.identity.model import DEMO_PASSWORD, PASSWORD_MIN
from core.identity.password_policy import check_new_password, common_passwords


def test_the_shipped_list_is_lower_case_without_comments_and_about_twenty_thousand_long():
    listed = common_passwords()
    assert 19_500 < len(listed) < 20_500
    assert all(entry == entry.strip().lower() and not entry.startswith("#") for entry in listed)
    long_enough = {entry for entry in listed if len(entry) >= PASSWORD_MIN}
    assert {"qwerty123456", "1q2w3e4r5t6y", "password1234", "correcthorsebatterystaple"} <= (
        long_enough
    )


@pytest.mark.parametrize(
    "password", ["Password1234", "QWERTY123456", "Correct Horse Battery Staple"]
)
def test_listed_passwords_are_refused_in_any_environment(password):
    for environment in ("development", "test", "production"):
        with pytest.raises(IdentityPolicyError) as refused:
            check_new_password(password, username="tess", environment=environment)
        assert refused.value.message == (
            "This password is on a list of common or breached passwords; choose another."
        )


@pytest.mark.parametrize("environment", ["test", "production"])
def test_the_demo_password_is_refused_outside_development(environment):
    with pytest.raises(IdentityPolicyError) as refused:
        check_new_password(DEMO_PASSWORD, username="tess", environment=environment)
    assert refused.value.message == (
        "The demo password is published; choose a password nobody else knows."
    )


def test_the_demo_password_is_accepted_in_development_and_for_the_seed():
    check_new_password(DEMO_PASSWORD, username="tess", environment="development")
    check_new_password(DEMO_PASSWORD, username="tess", environment="test", allow_demo_password=True)


def test_an_uncommon_passphrase_passes():
    check_new_password("violet kettle under the stairs", username="tess", environment="production")


PADDED = "A password must be at least 12 characters long, not counting spaces at the start or end."


@pytest.mark.parametrize(
    ("password", "message"),
    [
        (" " * 12, "A password must not be made of spaces only."),
        ("\u3000" * 12, "A password must not be made of spaces only."),  # ideographic space
        ("\u00a0" * 6 + " " * 6, "A password must not be made of spaces only."),
        ("q7" + " " * 10, PADDED),
        (" " * 10 + "q7", PADDED),
        ("\u3000" * 4 + "violet k" + "\u3000" * 4, PADDED),
    ],
)
def test_surrounding_whitespace_does_not_count_towards_the_minimum(password, message):
    assert len(password) >= PASSWORD_MIN
    with pytest.raises(IdentityPolicyError) as refused:
        check_new_password(password, username="tess", environment="production")
    assert refused.value.message == message


def test_spaces_inside_a_password_count_and_padding_around_a_long_one_is_fine():
    check_new_password("violet k  ettle", username="tess", environment="production")
    check_new_password("  violet kettle xq  ", username="tess", environment="production")
