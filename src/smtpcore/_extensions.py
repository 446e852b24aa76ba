"""The EHLO/LHLO reply as a typed view of the server's extensions (RFC 5321 4.1.1.1)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

__all__ = ["Extensions"]

_KEYWORD: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-]*")


class Extensions(Mapping[str, str]):
    """What a server offered in its EHLO (or LHLO) reply.

    A mapping from upper-case keyword to its parameters as one string (``""``
    when it has none). Lookups ignore case: ``"size" in ext``. Lines that are
    not ehlo-lines (RFC 5321 4.1.1.1) are ignored rather than trusted, as is
    the empty line some servers end with. The old ``AUTH=PLAIN LOGIN`` form
    counts as ``AUTH``.
    """

    __slots__ = ("_keywords", "domain")

    def __init__(self, keywords: Mapping[str, str] | None = None, domain: str = "") -> None:
        self._keywords: dict[str, str] = {k.upper(): v for k, v in (keywords or {}).items()}
        #: The server's name: the first word of the reply's first line.
        self.domain = domain

    @classmethod
    def from_reply_lines(cls, lines: tuple[str, ...]) -> Extensions:
        """Build the view from the lines of a 250 reply to EHLO or LHLO."""
        keywords: dict[str, str] = {}
        domain = lines[0].split(" ", 1)[0] if lines else ""
        for line in lines[1:]:
            word, _, params = line.strip().partition(" ")
            if word.upper().startswith("AUTH="):
                params = " ".join([word[5:], params]).strip()
                word = "AUTH"
            if not _KEYWORD.fullmatch(word):
                continue
            key = word.upper()
            params = " ".join(params.split())
            if key == "AUTH" and key in keywords:
                # Servers that print both AUTH and AUTH= forms: one list of names.
                known = keywords[key].split()
                params = " ".join(known + [m for m in params.split() if m not in known])
            elif key in keywords:
                continue
            keywords[key] = params
        return cls(keywords, domain)

    def __getitem__(self, keyword: str) -> str:
        return self._keywords[keyword.upper()]

    def __contains__(self, keyword: object) -> bool:
        return isinstance(keyword, str) and keyword.upper() in self._keywords

    def __iter__(self) -> Iterator[str]:
        return iter(self._keywords)

    def __len__(self) -> int:
        return len(self._keywords)

    def __repr__(self) -> str:
        return f"Extensions({self._keywords!r}, domain={self.domain!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Extensions):
            return self._keywords == other._keywords and self.domain == other.domain
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    @property
    def size(self) -> int | None:
        """SIZE (RFC 1870): the largest message in octets; 0 means no fixed limit.

        ``None`` when SIZE was not offered. A value that is not a number counts
        as 0: the server declared SIZE but gave no usable limit.
        """
        value = self._keywords.get("SIZE")
        if value is None:
            return None
        word = value.split(" ", 1)[0]
        return int(word) if word.isascii() and word.isdigit() and len(word) <= 20 else 0

    @property
    def auth(self) -> frozenset[str]:
        """The SASL mechanisms offered (RFC 4954 3), upper case."""
        return frozenset(self._keywords.get("AUTH", "").upper().split())

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920)."""
        return "PIPELINING" in self._keywords

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        return "8BITMIME" in self._keywords

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531)."""
        return "SMTPUTF8" in self._keywords

    @property
    def chunking(self) -> bool:
        """CHUNKING: BDAT (RFC 3030)."""
        return "CHUNKING" in self._keywords

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030); useful only together with CHUNKING."""
        return "BINARYMIME" in self._keywords

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461): RET, ENVID, NOTIFY and ORCPT."""
        return "DSN" in self._keywords

    @property
    def enhanced_status_codes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "ENHANCEDSTATUSCODES" in self._keywords

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "STARTTLS" in self._keywords

    @property
    def requiretls(self) -> bool:
        """REQUIRETLS (RFC 8689)."""
        return "REQUIRETLS" in self._keywords

    @property
    def etrn(self) -> bool:
        """ETRN (RFC 1985)."""
        return "ETRN" in self._keywords
