"""The pure identity rules: usernames, passwords, roles, display names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.identity.errors import IdentityPolicyError
from core.identity.model import (
    CONTEXT_WORDS,
    DEMO_PASSWORD,
    PASSWORD_MAX,
    PASSWORD_MIN,
    ROLE_ORDER,
    Role,
    check_password,
    check_reason,
    has_any_role,
    has_control_characters,
    has_password_control_characters,
    is_repetitive_or_sequential,
    normalise_display_name,
    normalise_roles,
    normalise_token_name,
    normalise_username,
    password_stamp,
    roles_needed_sentence,
    split_privileged,
    username_or_none,
)

USERNAME = re.compile(r"[a-z0-9._-]{3,150}")
username_chars = st.sampled_from(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)
valid_raw_usernames = st.text(username_chars, min_size=3, max_size=150)


# ---------------------------------------------------------------- usernames


@given(valid_raw_usernames, st.text(" \t", max_size=3), st.text(" \n", max_size=3))
def test_username_is_lowercased_and_stripped(raw, before, after):
    assert normalise_username(before + raw + after) == raw.lower()


@given(st.text(max_size=200))
def test_a_normalised_username_always_fits_the_rule_and_is_stable(raw):
    try:
        name = normalise_username(raw)
    except IdentityPolicyError:
        return
    assert USERNAME.fullmatch(name)
    assert normalise_username(name) == name


@pytest.mark.parametrize(
    ("raw", "sentence"),
    [
        ("ab", "A username must be 3 to 150 characters long."),
        ("a" * 151, "A username must be 3 to 150 characters long."),
        ("   ", "A username must be 3 to 150 characters long."),
        (
            "pat smith",
            "A username may contain only the letters a-z, digits, dots, hyphens and underscores.",
        ),
        (
            "pat@example",
            "A username may contain only the letters a-z, digits, dots, hyphens and underscores.",
        ),
        (
            "jos\u00e9",  # non-ASCII letters could make look-alike names
            "A username may contain only the letters a-z, digits, dots, hyphens and underscores.",
        ),
    ],
)
def test_bad_usernames_are_refused_with_a_sentence(raw, sentence):
    with pytest.raises(IdentityPolicyError) as refused:
        normalise_username(raw)
    assert refused.value.message == sentence
    assert refused.value.status == 422
    assert username_or_none(raw) is None


def test_username_boundaries():
    assert normalise_username("abc") == "abc"
    assert normalise_username("a" * 150) == "a" * 150


# ---------------------------------------------------------------- passwords


# Printable characters of any script, no control characters (those are refused on purpose).
password_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=PASSWORD_MIN, max_size=60
)


@given(password_text)
def test_any_password_of_twelve_or_more_characters_is_accepted_unless_a_rule_names_it(pw):
    """No composition rules: whatever its mix of characters, a long enough password passes
    unless it is the username, a service word dressed up, or a repeat or sequence."""
    assume(len(pw.strip()) >= PASSWORD_MIN)
    assume(pw.strip().lower() != "someone.else")
    letters = re.sub(r"[^a-z]+", "", pw.strip().lower())
    assume(not letters or letters not in {*CONTEXT_WORDS, "someoneelse"})
    assume(not is_repetitive_or_sequential(pw.strip().lower()))
    check_password(pw, username="someone.else")


@given(
    st.text(max_size=PASSWORD_MIN - 1).filter(lambda pw: not has_password_control_characters(pw))
)
def test_any_password_shorter_than_twelve_characters_is_refused(pw):
    with pytest.raises(IdentityPolicyError, match="at least 12 characters"):
        check_password(pw, username="someone.else")


def test_password_length_boundaries():
    check_password("x" * (PASSWORD_MIN - 1) + "y", username="tess")
    check_password("xz" * (PASSWORD_MAX // 2 - 1) + "yw", username="tess")
    with pytest.raises(IdentityPolicyError) as refused:
        check_password("xzyw" * (PASSWORD_MAX // 4) + "q", username="tess")
    assert refused.value.message == "A password must be at most 1024 characters long."


@given(valid_raw_usernames.filter(lambda name: len(name) >= PASSWORD_MIN))
def test_the_username_is_never_a_valid_password_in_any_case(name):
    for candidate in (name, name.upper(), name.lower(), f" {name} "):
        with pytest.raises(IdentityPolicyError) as refused:
            check_password(candidate, username=name.lower())
        assert refused.value.message == "A password must not be the same as the username."


def test_a_password_containing_the_username_among_other_words_is_fine():
    check_password("tess.technician likes green tea", username="tess.technician")


@pytest.mark.parametrize(
    "password", ["tess.technician!", "Tess-Technician-2026", "infusion2026!!", "Pharmacy#123456"]
)
def test_the_username_or_a_service_word_with_digits_and_symbols_added_is_refused(password):
    with pytest.raises(IdentityPolicyError) as refused:
        check_password(password, username="tess.technician")
    assert refused.value.message == (
        "A password must be more than the username or this service's name with digits or "
        "symbols added."
    )


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaaaaaa",
        "abababababab",
        "abcabcabcabcabc",
        "1234123412341234",
        "abcdefghijklmn",
        "zyxwvutsrqpo",
        "123456789012",
        "987654321098",
    ],
)
def test_repeats_and_plain_sequences_are_refused(password):
    with pytest.raises(IdentityPolicyError) as refused:
        check_password(password, username="tess")
    assert refused.value.message == (
        "A password must not be one character or a short run repeated, or a plain sequence "
        "such as abcdefghijkl or 123456789012."
    )


def test_a_run_of_five_repeated_is_not_a_short_repeat():
    check_password("abcdeabcdeabcde", username="tess")


@pytest.mark.parametrize(
    "password",
    ["twelve chars\tand more", "line one\nline two", "nul\x00inside it", "escape\x1b[2J here"],
)
def test_control_characters_are_refused_tab_and_line_breaks_included(password):
    with pytest.raises(IdentityPolicyError) as refused:
        check_password(password, username="tess")
    assert refused.value.message == "A password must not contain control characters."


def test_a_listed_password_is_refused_whatever_its_case_and_surrounding_spaces():
    common = frozenset({"qwerty123456"})
    for candidate in ("qwerty123456", "QWERTY123456", "  QwErTy123456 "):
        with pytest.raises(IdentityPolicyError) as refused:
            check_password(candidate, username="tess", common=common)
        assert refused.value.message == (
            "This password is on a list of common or breached passwords; choose another."
        )
    check_password("qwerty123456 but longer", username="tess", common=common)


def test_the_demo_password_is_refused_unless_allowed():
    with pytest.raises(IdentityPolicyError) as refused:
        check_password(DEMO_PASSWORD.upper(), username="tess")
    assert refused.value.message == (
        "The demo password is published; choose a password nobody else knows."
    )
    check_password(DEMO_PASSWORD, username="tess", allow_demo_password=True)


def test_no_composition_rules_unicode_and_spaces_are_fine():
    for password in (
        "всё будет хорошо",
        "     spaced     out     ",
        "ünïcödé ünïcödé",
        "12345 67890 13579",
    ):
        check_password(password, username="tess")


def test_only_admin_and_pharmacist_need_a_second_admin():
    assert split_privileged([Role.pharmacist, Role.packer, Role.admin, Role.technician]) == (
        [Role.technician, Role.packer],
        [Role.pharmacist, Role.admin],
    )
    assert split_privileged([Role.packer]) == ([Role.packer], [])


# ---------------------------------------------------------------- roles


@given(st.lists(st.sampled_from([r.value for r in Role]), min_size=1, max_size=8))
def test_roles_come_back_once_each_in_a_fixed_order(roles):
    result = normalise_roles(roles)
    assert result == [role for role in ROLE_ORDER if role.value in roles]
    assert normalise_roles(reversed(roles)) == result


def test_roles_are_read_case_insensitively():
    assert normalise_roles([" Pharmacist", "ADMIN"]) == [Role.pharmacist, Role.admin]


def test_no_roles_is_refused():
    with pytest.raises(IdentityPolicyError) as refused:
        normalise_roles([])
    assert refused.value.message == "A user needs at least one role."


def test_unknown_role_is_refused_naming_the_known_ones():
    with pytest.raises(IdentityPolicyError) as refused:
        normalise_roles(["pharmacist", "superuser"])
    assert refused.value.message == (
        "Unknown role 'superuser'; the roles are technician, packer, pharmacist, admin."
    )


def test_admin_does_not_pass_a_pharmacist_check():
    assert not has_any_role(["admin"], [Role.pharmacist])
    assert has_any_role(["admin", "pharmacist"], [Role.pharmacist])


@given(st.lists(st.sampled_from(list(Role)), max_size=4))
def test_no_required_roles_means_any_staff_member(user_roles):
    assert has_any_role([r.value for r in user_roles], [])


def test_role_sentences():
    assert roles_needed_sentence([Role.pharmacist]) == "This needs the pharmacist role."
    assert roles_needed_sentence([Role.admin, Role.technician, Role.pharmacist]) == (
        "This needs one of the roles technician, pharmacist or admin."
    )


# ---------------------------------------------------------------- names and stamps


def test_display_names_are_trimmed_and_bounded():
    assert normalise_display_name("  Dr.   Priya\tRaman ") == "Dr. Priya Raman"
    assert normalise_display_name("x" * 200) == "x" * 200
    for raw, sentence in (
        ("", "A display name is required."),
        (" \n ", "A display name is required."),
        ("x" * 201, "A display name must be at most 200 characters long."),
    ):
        with pytest.raises(IdentityPolicyError) as refused:
            normalise_display_name(raw)
        assert refused.value.message == sentence


FORMATTING = (
    "A display name must not contain invisible formatting characters, such as right-to-left "
    "overrides."
)


@pytest.mark.parametrize(
    "character",
    ["\u202e", "\u202a", "\u2066", "\u2069", "\u200e", "\u200f", "\u061c", "\u200b",
     "\u2060", "\ufeff", "\u00ad", "\U000e0041"],
)  # fmt: skip
def test_display_names_refuse_invisible_format_characters(character):
    """The printed name on an e-signature must read as it is stored: "Amy \u202eeeL" shows
    as "Amy Lee"."""
    with pytest.raises(IdentityPolicyError) as refused:
        normalise_display_name(f"Amy {character}eeL")
    assert refused.value.message == FORMATTING


def test_display_names_keep_the_joiners_names_are_spelt_with():
    assert normalise_display_name("Mehr\u200cnaz") == "Mehr\u200cnaz"  # Persian ZWNJ
    assert normalise_display_name("Ra\u200dj") == "Ra\u200dj"


def test_token_names_are_trimmed_and_required():
    assert normalise_token_name(" label  printer ") == "label printer"
    with pytest.raises(IdentityPolicyError, match="needs a name"):
        normalise_token_name("  ")


# hypothesis wants naive bounds; the values it draws are made aware by `timezones`.
NAIVE_2000 = datetime(2000, 1, 1)  # noqa: DTZ001
NAIVE_2100 = datetime(2100, 1, 1)  # noqa: DTZ001


@given(st.datetimes(min_value=NAIVE_2000, max_value=NAIVE_2100, timezones=st.just(UTC)))
def test_password_stamp_is_exact_to_the_microsecond(aware):
    assert password_stamp(aware + timedelta(microseconds=1)) == password_stamp(aware) + 1
    assert password_stamp(aware) == password_stamp(aware.astimezone(UTC))


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x7f"])
def test_control_characters_are_refused_in_names_and_reasons(character):
    for function, sentence in (
        (normalise_display_name, "A display name must not contain control characters."),
        (normalise_token_name, "An API token name must not contain control characters."),
        (check_reason, "A reason must not contain control characters."),
    ):
        with pytest.raises(IdentityPolicyError) as refused:
            function(f"label{character}printer")
        assert refused.value.message == sentence
    assert has_control_characters(character)


def test_tabs_and_line_breaks_are_not_control_characters_here():
    assert not has_control_characters("left\r\nsee ticket\t42 ✓ Ωmega")
    assert check_reason("left\r\nsee ticket\t42") == "left\r\nsee ticket\t42"
    assert normalise_display_name("Dr.\tPriya\r\nRaman") == "Dr. Priya Raman"
