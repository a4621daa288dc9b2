"""The e-signature form component (frontend/templates/components/signature.html), rendered
by the app's own Jinja environment: a plain form, so it works without JavaScript."""

from __future__ import annotations

import re

from frontend.templating import make_environment

TEMPLATE = (
    '{% from "components/signature.html" import signature_form %}'
    "{{ signature_form(action=action, meaning=meaning, signer=signer, error=error,"
    " hidden=hidden) }}"
)


def render(**context: object) -> str:
    env = make_environment(site_name="Test pharmacy", environment="test")
    values = {"action": "/batches/12/verify", "meaning": "verified", "signer": "Dr. Priya Raman",
              "error": None, "hidden": {}, **context}  # fmt: skip
    return env.from_string(TEMPLATE).render(**values)


def test_the_form_shows_the_meaning_and_the_name_and_asks_for_the_password():
    html = render()

    assert re.search(
        r'<form class="form signature" method="post" action="/batches/12/verify"', html
    )
    assert re.search(r'data-testid="signature-meaning">verified</strong>', html)
    assert re.search(r'data-testid="signature-signer">Dr\. Priya Raman</strong>', html)
    [password] = re.findall(r"<input[^>]*type=\"password\"[^>]*>", html, flags=re.S)
    assert 'name="signature_password"' in password
    assert 'autocomplete="current-password"' in password
    assert "required" in password
    assert re.search(
        r'<button class="button button--primary" type="submit"[^>]*>Sign: verified<', html
    )
    # Works without JavaScript, and within the pages' CSP: no script, no inline style or handler.
    assert "<script" not in html
    assert "style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    assert "hx-" not in html


def test_the_meaning_is_shown_but_never_sent_the_route_decides_what_is_signed():
    html = render(meaning="disposition: discard")

    assert 'name="meaning"' not in html
    assert "disposition: discard" in html


def test_an_error_is_announced_and_tied_to_the_password_field():
    html = render(error="The password is not correct; nothing was signed.")

    assert re.search(
        r'role="alert" id="signature-error" data-testid="signature-error">'
        r"The password is not correct; nothing was signed\.</div>",
        html,
    )
    assert 'aria-invalid="true" aria-describedby="signature-error"' in html


def test_text_is_escaped_and_hidden_fields_are_carried():
    html = render(signer="<b>Mallory</b>", hidden={"version": "3"})

    assert "&lt;b&gt;Mallory&lt;/b&gt;" in html
    assert '<input type="hidden" name="version" value="3">' in html
