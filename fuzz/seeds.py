"""Write the seed corpora: fuzz/corpus/<target>/ from realistic transcripts.

The replies follow what Postfix 3.7, Exim 4.96, OpenSMTPD 7.4, Dovecot 2.3
LMTP, aiosmtpd 1.4 and smtp-sink were seen to answer here, and the RFC
5321/3030/4954 examples; the hostile ones the known attacks on SMTP parsers. Each
seed starts with the bytes the target reads first (limits, flags), chosen
so that realistic limits are in force. Run ``python -m fuzz.seeds`` to
rewrite them; the files are kept in git so every run starts from them.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def num(low: int, high: int, want: int) -> bytes:
    """The two bytes ``Input.number(low, high)`` reads as ``want``."""
    value = want - low
    assert 0 <= value <= high - low
    return bytes([value >> 8, value & 0xFF])


def raw(data: bytes, most: int) -> bytes:
    """The bytes ``Input.raw(most)`` reads as ``data``."""
    return num(0, most, len(data)) + data


GREETINGS = [
    b"220 mx.example.test ESMTP Postfix (Debian/GNU)\r\n",
    b"220 mx.example.test ESMTP Exim 4.96 Sun, 29 Nov 2026 06:42:03 +0000\r\n",
    b"220 mx.example.test ESMTP OpenSMTPD\r\n",
    b"220 mx.example.test Dovecot ready.\r\n",
    b"220 host.example Python SMTP 1.4.6\r\n",
    b"220 mx.example.test ESMTP\r\n",
    b"554 5.3.2 mx.example.test No SMTP service here\r\n",
    b"421 4.3.2 mx.example.test Service not available, closing channel\r\n",
]
EHLO_REPLIES = [
    b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-VRFY\r\n250-ETRN\r\n"
    b"250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
    b"250 CHUNKING\r\n",
    b"250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250-VRFY\r\n250-ETRN\r\n"
    b"250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n"
    b"250-SMTPUTF8\r\n250 CHUNKING\r\n",
    b"250-mx.example.test Hello client.example [127.0.0.1]\r\n250-SIZE 52428800\r\n"
    b"250-8BITMIME\r\n250-PIPELINING\r\n250-PIPECONNECT\r\n250-CHUNKING\r\n250-STARTTLS\r\n"
    b"250-PRDR\r\n250-SMTPUTF8\r\n250 HELP\r\n",
    b"250-mx.example.test Hello client.example [127.0.0.1], pleased to meet you\r\n"
    b"250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SIZE 36700160\r\n250-DSN\r\n"
    b"250-STARTTLS\r\n250 HELP\r\n",
    b"250-mx.example.test\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250 PIPELINING\r\n",
    b"250-host.example\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    b"250-STARTTLS\r\n250 HELP\r\n",
    b"250-host.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n"
    b"250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n",
    b"250-mx.example AUTH=PLAIN LOGIN\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 SIZE\r\n",
]
REPLIES = [
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
    b"250 2.0.0 Ok: queued as 4ZxYw1Abc2z3\r\n221 2.0.0 Bye\r\n",
    b"250 OK\r\n250 Accepted\r\n250- 26 byte chunk, total 52\r\n250 OK id=1rAbCd-000123-Xy\r\n",
    b"250 2.0.0 Ok: 26 bytes\r\n250 2.0.0 Ok: 52 bytes queued as 4ZxYw1Abc2z3\r\n",
    b"500 5.5.1 Invalid command: Pipelining not supported\r\n",
    b"553 5.1.0 Sender address syntax error\r\n",
    b"250 2.0.0 <u1@example.test> Yx3bCw1xZ2V Saved\r\n"
    b"451 4.2.0 <broken@example.test> Internal error occurred. Refer to server log\r\n",
    b'500 Error: command "BDAT" not recognized\r\n',
    b"530 Must issue a STARTTLS command first\r\n",
    b"555 MAIL FROM parameters not recognized or not implemented\r\n",
    b"220 2.0.0 Ready to start TLS\r\n",
    b"334 \r\n235 2.7.0 Authentication successful\r\n",
    b"334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n535 5.7.8 Error: authentication failed\r\n",
    b"421 4.4.2 mx.example.test Error: timeout exceeded\r\n",
    b"452 4.5.3 Error: too many recipients\r\n",
    b"552 5.3.4 Message size exceeds fixed limit\r\n",
    b"554 5.7.1 <b@example.net>: Relay access denied\r\n",
    b"250\r\n250 \r\n",
]
HOSTILE_REPLIES = [
    b"2_5 ok\r\n",
    b"+25 ok\r\n",
    "２５０ ok\r\n".encode(),
    "25٠ ok\r\n".encode(),
    b"250-first\r\n251 changed\r\n",
    b"250-x\r\n" * 200,
    b"250 " + b"x" * 3000,
    b"250 no line end",
    b"250 nul\x00here\r\n",
    b"250 bad utf8 \xff\xfe\xc3\r\n",
    b"250 bare lf\n",
    b"250 bare\rcr\r\n",
    b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n",
    b"220 2.0.0 Ready to start TLS\r\n2",
    b"250 ok\r\n250 surplus\r\n250 surplus\r\n",
    b"600 no\r\n199 no\r\n260 no\r\n",
    b"250x\r\n",
]
SESSIONS = [
    b"EHLO client.example\r\nMAIL FROM:<a@example.org> SIZE=26 BODY=8BITMIME\r\n"
    b"RCPT TO:<b@example.test>\r\nDATA\r\nSubject: hi\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
    b"EHLO client.example\r\nMAIL FROM:<\xc3\xa4lice@example.org> SMTPUTF8 BODY=8BITMIME RET=HDRS "
    b"ENVID=abc\r\nRCPT TO:<b\xc3\xb8b@example.test> NOTIFY=SUCCESS,FAILURE "
    b"ORCPT=rfc822;b+40example.test\r\nRCPT TO:<c@example.test>\r\nBDAT 26\r\n"
    b"0123456789abcdef0123456789BDAT 26 LAST\r\nMAIL FROM:<x@example.org>\r\nRSET\r\nQUIT\r\n",
    b"LHLO client.example\r\nMAIL FROM:<>\r\nRCPT TO:<u1@example.test>\r\nRCPT TO:<Postmaster>\r\n"
    b"DATA\r\nx\r\n.\r\n",
    b"EHLO client.example\r\nSTARTTLS\r\nMAIL FROM:<injected@example.org>\r\n",
    b"EHLO client.example\r\nAUTH PLAIN AHRlc3QAc2VjcmV0\r\nAUTH LOGIN\r\ndGVzdA==\r\nc2VjcmV0\r\n"
    b"AUTH LOGIN\r\n*\r\nQUIT\r\n",
    b"HELO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
    b"smuggled\n.\nMAIL FROM:<evil@example.org>\r\n\r\n.\r\n",
    b"EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
    b"a\r.\rb\r\n\r.\r\n.\r\n",
    b"EHLO x\r\nBDAT -1\r\nBDAT 99999999999999999999999\r\nBDAT 1\xd9\xa3\r\nNOOP\r\n",
    b"MAIL FROM:<a@example.org>\r\n" + b"X" * 600 + b"\r\n.\r\nDATA\r\nQUIT\r\n",
    b"EHLO [127.0.0.1]\r\nEHLO [IPv6:::1]\r\nVRFY b\r\nEXPN list\r\nHELP\r\nETRN example.net\r\n"
    b"TURN\r\nSEND FROM:<a@example.org>\r\nNOOP\r\nRSET\r\nQUIT\r\n",
]
CONTENT = [
    b"Subject: hi\r\n\r\nhello\r\n",
    b".\r\n",
    b"..\r\n.\r\n",
    b"line\n.\nMAIL FROM:<evil@example.org>\n",
    b"a\r\n.\rb\r.\r\n\r\n.\n",
    b"no final line end",
    b"\r",
    b"\x00\xff binary \r\n.\r\n",
]


def write(target: str, seeds: list[bytes]) -> None:
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for seed in seeds:
        name = hashlib.sha1(seed).hexdigest()[:16]
        (folder / name).write_bytes(seed)


def main() -> None:
    """Rewrite every corpus."""
    server_wires = [
        g + e + r for g in GREETINGS[:6] for e, r in zip(EHLO_REPLIES, REPLIES, strict=False)
    ]
    replies = server_wires + GREETINGS + REPLIES + HOSTILE_REPLIES
    write("replies", [num(8, 600, 600) + num(1, 12, 12) + w for w in replies])
    limits = num(8, 700, 512) + num(1, 900, 900) + num(1, 900, 900)
    write("commands", [limits + s for s in SESSIONS] + [limits + c for c in CONTENT])
    write("unstuff", [b"\x00\x00\x07" + c for c in CONTENT + SESSIONS] +
          [b"\x01\x01" + num(0, 300, 20) + b"\x03" + c for c in CONTENT])  # fmt: skip
    bdat = [
        b"\x00\x00"
        + num(16, 300, 300)
        + num(0, 6, 2)
        + b"\x02"
        + raw(b"abc", 40)
        + b"\x00\x01"
        + b"\x01"
        + raw(b"", 40)
        + b"\x03\x00"
    ]
    write("bdat", bdat + [b"\x00\x00" + num(16, 300, 300) + num(0, 6, 0) + s for s in SESSIONS])
    ehlo_lines = [[line[4:] for line in reply.split(b"\r\n")[:-1]] for reply in EHLO_REPLIES]
    write("extensions", [
        num(0, 12, len(lines)) + b"".join(raw(line, 80) for line in lines) + b"\xff\xff\x00"
        for lines in ehlo_lines
    ])  # fmt: skip
    config = b"\xff\x3f"
    server_limits = (num(8, 600, 512) + num(1, 800, 800) + num(1, 800, 800) + num(1, 6, 3)
                     + num(1, 25, 10) + b"\x00")  # fmt: skip
    write("server", [config + server_limits + b"\x00\x01" + s for s in SESSIONS] +
          [b"\x00\x00" + server_limits + b"\x00\x00" + s for s in SESSIONS])  # fmt: skip
    client_head = b"\x00\x00\x01" + num(8, 600, 600) + num(1, 12, 12)
    plan = (num(0, 12, 4) + num(1, 3, 1) + b"\x00" + num(1, 3, 3) + b"\x03\x06\x08"
            + num(1, 3, 1) + b"\x0c" + num(1, 3, 2) + b"\x0f\x12")  # fmt: skip
    write("client", [client_head + plan + g + e + r for g, e, r in
                     zip(GREETINGS, EHLO_REPLIES, REPLIES, strict=False)] +
          [client_head + num(0, 12, 0) + h for h in HOSTILE_REPLIES])  # fmt: skip
    plain = base64.b64encode(b"\0test\0secret")
    write("sasl_client", [
        raw(b"VXNlcm5hbWU6", 80) + bytes([m]) + b"\x01" + num(0, 4, 2) + raw(c1, 120)
        + raw(c2, 120) + b"\x01\x01" + raw(b"user", 20) + raw(b"pencil", 20) + raw(b"salt", 16)
        + num(1, 16, 4) + b"\x01" + num(0, 10, 3) + b"\x01"
        for m, c1, c2 in (
            (0, b"", b""), (1, b"Username:", b"Password:"), (2, b"<1896.697170952@example>", b""),
            (3, b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
             b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
            (5, b'{"status":"invalid_token"}', b""),
        )
    ])  # fmt: skip
    write("sasl_server", [
        raw(line, 200) + bytes([m]) + b"\x01" + raw(first, 200) + b"\x01" + raw(b"", 200)
        for line, m, first in (
            (plain, 0, b"\0test\0secret"), (b"*", 1, b"test"), (b"=", 2, b"test 0123"),
            (b"dGVzdA", 3, b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"),
            (b"dGVzdA==", 4, b"n,a=admin,n=user,r=rOprNGfwEbeRWgbNEkqO"),
        )
    ])  # fmt: skip
    syntax_items = [
        (0, b"a@example.org"),
        (0, b'"quoted local"@example.org'),
        (0, b"\xc3\xa4@example.org"),
        (2, b"[127.0.0.1]"),
        (2, b"[IPv6:2001:db8::1]"),
        (2, b"mx.example.test"),
        (2, b"[tag:content]"),
        (4, b"rfc822;b+40example.test"),
        (4, b"caf\xc3\xa9 +2B"),
        (1, b"first.last"),
        (0, b"postmaster"),
    ]
    write("syntax", [bytes([k]) + raw(t, 300) for k, t in syntax_items] + [
        b"\x03" + raw(b"x", 300) + b"\x00" + raw(v, 120) + b"\x01" + bytes([n])
        for n, v in ((0, b"1024"), (1, b"8BITMIME"), (3, b"HDRS"), (4, b"QQ+2Bid"),
                     (5, b"SUCCESS,DELAY"), (6, b"rfc822;a+40b"), (7, b"<>"))
    ])  # fmt: skip
    diff_head = b"\x00\x01\x00\x00" + raw(b"alice", 40) + num(1, 3, 2) + raw(b"bob", 40)
    diff_head += raw(b"carol", 40) + b"\x05"
    write("differential", [diff_head + c for c in CONTENT] +
          [b"\x01\x00\x01\x01" + raw(b"", 40) + num(1, 3, 1) + raw(b"", 40) + b"\x09" + c
           for c in CONTENT])  # fmt: skip


if __name__ == "__main__":
    main()
