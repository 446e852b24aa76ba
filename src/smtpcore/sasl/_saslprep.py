"""SASLprep (RFC 4013): the stringprep profile for user names and passwords.

The tables are the stdlib ``stringprep`` module's (Unicode 3.2, as RFC 3454
requires); normalisation uses the matching ``unicodedata.ucd_3_2_0`` so that
the tables and NFKC agree on one Unicode version.
"""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable
from typing import Final

from .._errors import LocalProtocolError

__all__ = ["SaslprepError", "saslprep"]


class SaslprepError(LocalProtocolError):
    """A string cannot be prepared with SASLprep (RFC 4013 2.3, 2.4, 2.5)."""


# RFC 4013 2.3: every table here is prohibited output. C.1.2 is listed too,
# although step 2.1 already mapped it to SPACE, as the RFC lists it.
_PROHIBITED: Final[tuple[tuple[Callable[[str], bool], str], ...]] = (
    (stringprep.in_table_c12, "non-ASCII space"),
    (stringprep.in_table_c21_c22, "control character"),
    (stringprep.in_table_c3, "private use character"),
    (stringprep.in_table_c4, "non-character code point"),
    (stringprep.in_table_c5, "surrogate code point"),
    (stringprep.in_table_c6, "character inappropriate for plain text"),
    (stringprep.in_table_c7, "character inappropriate for canonical representation"),
    (stringprep.in_table_c8, "change display property or deprecated character"),
    (stringprep.in_table_c9, "tagging character"),
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare ``text`` with the SASLprep profile of stringprep (RFC 4013).

    Maps non-ASCII spaces to SPACE and removes characters "commonly mapped to
    nothing" (2.1), normalises with NFKC (2.2), then refuses prohibited
    output (2.3) and bad bidirectional text (2.4, RFC 3454 6).
    ``allow_unassigned`` chooses between a "query" (True, as SCRAM uses it,
    RFC 5802 2.2) and a "stored string" (False, RFC 3454 7).

    Raises SaslprepError (a LocalProtocolError) naming the offending code point.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch for ch in text if not stringprep.in_table_b1(ch)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        for in_table, what in _PROHIBITED:
            if in_table(ch):
                raise SaslprepError(
                    f"U+{ord(ch):04X} is a {what}, prohibited by SASLprep (RFC 4013 2.3)"
                )
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise SaslprepError(
                f"U+{ord(ch):04X} is unassigned in Unicode 3.2, "
                "prohibited in a stored string (RFC 4013 2.5)"
            )
    # RFC 3454 6: a string with right-to-left characters has no left-to-right
    # ones, and begins and ends with a right-to-left character.
    if any(stringprep.in_table_d1(ch) for ch in prepared):
        if any(stringprep.in_table_d2(ch) for ch in prepared):
            raise SaslprepError(
                "string mixes right-to-left and left-to-right characters (RFC 4013 2.4)"
            )
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise SaslprepError(
                "right-to-left string must begin and end with a right-to-left "
                "character (RFC 4013 2.4)"
            )
    return prepared
