"""The password policy as applied: the rules of core.identity.model with the list of common and
breached passwords shipped with the code (common_passwords.txt).

Read once per process, on first use, into a set of lower-cased passwords: about 20,000 short
strings, a couple of megabytes, looked up in constant time. Shipped as data rather than
fetched: a pharmacy's server may have no internet, and the check must not depend on a third
party being up (NIST SP 800-63B allows any list of "values known to be commonly-used,
expected, or compromised").
"""

from __future__ import annotations

import functools
from pathlib import Path

from core.identity.model import check_password

LIST_PATH = Path(__file__).with_name("common_passwords.txt")


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = LIST_PATH.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def check_new_password(
    password: str, *, username: str, environment: str, allow_demo_password: bool = False
) -> None:
    """The policy (core.identity.model.check_password) with the shipped list. The published
    demo password is accepted only when INFUSION_ENV=development (or for the demo seed)."""
    check_password(
        password,
        username=username,
        common=common_passwords(),
        allow_demo_password=allow_demo_password or environment == "development",
    )
