"""SASLprep (RFC 4013), with the examples of its section 3."""

from __future__ import annotations

import pytest

from smtpcore import LocalProtocolError
from smtpcore.sasl import SaslprepError, ScramSHA256Client, saslprep


@pytest.mark.parametrize(
    ("given", "prepared"),
    [
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),  # no transformation
        ("USER", "USER"),  # case preserved
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
        ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),  # RandAL at both ends
    ],
)
def test_rfc4013_examples(given: str, prepared: str) -> None:
    assert saslprep(given) == prepared


@pytest.mark.parametrize(
    "given",
    [
        "\u0007",  # control character (RFC 4013 3, example 6)
        "\u0627\u0031",  # bidi: does not end with RandAL (example 7)
        "\u0627a\u0628",  # bidi: RandAL mixed with L
        "a\ue000",  # private use
        "a\ufffe",  # non-character
    ],
)
def test_prohibited_output_is_refused(given: str) -> None:
    with pytest.raises(SaslprepError):
        saslprep(given)


def test_unassigned_code_point_allowed_only_in_queries() -> None:
    unassigned = "\u0221"  # unassigned in Unicode 3.2
    assert saslprep(unassigned) == unassigned
    with pytest.raises(SaslprepError, match="U\\+0221"):
        saslprep(unassigned, allow_unassigned=False)


def test_saslprep_error_is_local() -> None:
    with pytest.raises(LocalProtocolError, match="U\\+0007"):
        ScramSHA256Client("bad\u0007user", "pencil", "nonce")


def test_scram_client_prepares_username() -> None:
    client = ScramSHA256Client("I\u00adX", "pencil", "nonce")
    assert client.initial_response() == b"n,,n=IX,r=nonce"
