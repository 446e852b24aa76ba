"""``smtpcore probe``: what a server offers, seen through the sync client; no mail is sent."""

from __future__ import annotations

import ssl
from typing import TextIO

from smtpcore import Extensions
from smtpcore.session import TLSError, TLSMode

from .cli import printable, server_text
from .sync import SMTPClient

__all__ = ["probe"]


class _Transcript:
    """Collects what the server said, to show the greeting as it was sent."""

    def __init__(self) -> None:
        self.received = b""

    def __call__(self, direction: str, data: bytes) -> None:
        if direction == "<":
            self.received += data


def _show_extensions(title: str, ext: Extensions, out: TextIO) -> None:
    print(f"{title}:", file=out)
    for keyword, params in ext.items():
        print(printable(f"  {keyword} {params}".rstrip()), file=out)


def probe(
    host: str,
    port: int | None,
    *,
    implicit: bool = False,
    cafile: str | None = None,
    timeout: float = 10.0,
    out: TextIO,
) -> int:
    """Connect, show the greeting, the extensions, TLS and AUTH; 0 when TLS verified."""
    mode: TLSMode = "implicit" if implicit else "none"
    verified_context = ssl.create_default_context(cafile=cafile)
    transcript = _Transcript()
    with SMTPClient(host, port, tls=mode, ssl_context=verified_context, timeout=timeout,
                    trace=transcript) as smtp:  # fmt: skip
        greeting = server_text(transcript.received.split(b"\r\n", 1)[0])
        print(f"greeting: {greeting}", file=out)
        _show_extensions("extensions", smtp.extensions, out)
        first = smtp.extensions
        info = smtp.tls_info
    if info is None and not first.starttls:
        print("STARTTLS: not offered", file=out)
        print(f"AUTH: {' '.join(sorted(first.auth)) or 'not offered'}", file=out)
        return 0
    status = 0
    if info is None:
        try:
            with SMTPClient(host, port, tls="starttls", ssl_context=verified_context,
                            timeout=timeout) as smtp:  # fmt: skip
                info, after = smtp.tls_info, smtp.extensions
        except TLSError as exc:
            print(f"TLS verification: FAILED ({printable(str(exc))})", file=out)
            status = 1
            unverified = ssl.create_default_context()
            unverified.check_hostname = False
            unverified.verify_mode = ssl.CERT_NONE
            with SMTPClient(host, port, tls="starttls", ssl_context=unverified,
                            timeout=timeout) as smtp:  # fmt: skip
                info, after = smtp.tls_info, smtp.extensions
    else:
        after = first
    if info is not None:
        print(f"TLS: {info.version} {info.cipher}", file=out)
        if info.verified:
            print("TLS verification: ok", file=out)
            print(f"certificate subject: {printable(str(info.subject))}", file=out)
            print(f"certificate issuer: {printable(str(info.issuer))}", file=out)
            print(f"certificate expires: {info.not_after}", file=out)
        if not implicit:
            _show_extensions("extensions after STARTTLS", after, out)
    print(f"AUTH: {' '.join(sorted(after.auth)) or 'not offered'}", file=out)
    return status
