#!/usr/bin/env python3
"""A configurable SMTP server for postflight's integration tests (aiosmtpd).

It listens on 127.0.0.1 on a free port (or --port) and prints `PORT <n>` as its first line on stdout,
then serves until it is killed (or, with --stop-on-stdin-eof, until its stdin is closed, so
it never outlives the test that started it even if that test crashes). Every accepted message is appended as one JSON object per line to the file
given with --record:

    {"mail_from": ..., "mail_options": [...], "rcpt_tos": [...], "rcpt_options": [...],
     "data": <the raw message, one character per byte (latin-1)>,
     "auth_user": <login or null>, "auth_mechanism": <PLAIN/LOGIN or null>,
     "tls": <bool>, "ehlo": <EHLO name>, "peer_port": <client's port>,
     "parsed": {"subject": ..., "body": ..., "headers": [[name, value], ...]}}

"parsed" is what Python's email package decodes from "data" (RFC 2047 headers, quoted-
printable or base64 bodies): an independent reading of what postflight sent.

Examples:
    smtp_server.py --record out.jsonl
    smtp_server.py --mode starttls --cert c.pem --key k.pem --auth-user u --auth-password p
    smtp_server.py --mode tls --cert c.pem --key k.pem --reject bob@example.com
    smtp_server.py --silent
"""

import argparse
import asyncio
import email
import email.policy
import json
import logging
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0,
                   help="port to listen on (default 0: a free one; printed either way)")
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain",
                   help="plain; STARTTLS offered; or TLS from the first byte (implicit TLS)")
    p.add_argument("--cert", help="PEM certificate (chain) for starttls/tls")
    p.add_argument("--key", help="PEM private key for starttls/tls")
    p.add_argument("--record", help="append every accepted message as a JSON line to this file")
    p.add_argument("--auth-user", help="accept AUTH with this username (and --auth-password)")
    p.add_argument("--auth-password", help="the password --auth-user must give")
    p.add_argument("--auth-mechanisms", default="PLAIN,LOGIN",
                   help="comma-separated AUTH mechanisms to offer (default PLAIN,LOGIN)")
    p.add_argument("--auth-required", action="store_true", help="refuse MAIL before AUTH (530)")
    p.add_argument("--auth-over-plaintext", action="store_true",
                   help="offer and accept AUTH on an unencrypted connection too")
    p.add_argument("--require-starttls", action="store_true",
                   help="refuse commands other than EHLO/STARTTLS/QUIT before STARTTLS")
    p.add_argument("--reject", action="append", default=[], metavar="ADDR",
                   help="refuse this recipient with 550 (repeatable)")
    p.add_argument("--defer", action="append", default=[], metavar="ADDR",
                   help="refuse this recipient with 450, temporarily (repeatable)")
    p.add_argument("--reject-sender", action="append", default=[], metavar="ADDR",
                   help="refuse this sender with 553 (repeatable)")
    p.add_argument("--reject-data", metavar="REPLY",
                   help="answer the end of DATA with this reply, e.g. '554 5.7.1 spam'")
    p.add_argument("--idle-timeout", type=float, default=300,
                   help="close a connection idle for this many seconds (421)")
    p.add_argument("--hostname", default="test.smtp.local", help="name in the greeting")
    p.add_argument("--smtputf8", action="store_true", help="offer SMTPUTF8")
    p.add_argument("--stop-on-stdin-eof", action="store_true",
                   help="exit when stdin reaches end of file (the parent closed it or died)")
    p.add_argument("--silent", action="store_true",
                   help="accept TCP connections and never send a byte (a hung server)")
    args = p.parse_args()
    if args.mode != "plain" and not (args.cert and args.key):
        p.error("--mode starttls/tls needs --cert and --key")
    if bool(args.auth_user) != bool(args.auth_password is not None):
        p.error("--auth-user and --auth-password go together")
    return args


class Recorder:
    """The aiosmtpd handler: applies the refusals and records what was accepted."""

    def __init__(self, args):
        self.args = args
        self.count = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.lower() in (a.lower() for a in self.args.reject_sender):
            return "553 5.7.1 <%s>: Sender address rejected: not owned by user" % address
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        lower = address.lower()
        if lower in (a.lower() for a in self.args.reject):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if lower in (a.lower() for a in self.args.defer):
            return "450 4.2.0 <%s>: Recipient address rejected: try again later" % address
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.args.reject_data:
            return self.args.reject_data
        self.count += 1
        data = envelope.original_content or b""
        auth = session.auth_data if session.authenticated else None
        record = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "data": data.decode("latin-1"),
            "auth_user": auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None,
            "auth_mechanism": getattr(session, "pf_auth_mechanism", None),
            "tls": self.args.mode == "tls" or session.ssl is not None,
            "ehlo": session.host_name,
            "peer_port": session.peer[1] if session.peer else None,
            "parsed": parse_message(data),
        }
        if self.args.record:
            with open(self.args.record, "a", encoding="utf-8") as f:
                # Written (not fsynced) before the reply: a reader sees it once the
                # client has the 250.
                f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK: queued as PF%05d" % self.count


def parse_message(data):
    # SMTP carries CRLF line ends; the message's lines end in LF once received.
    msg = email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=email.policy.default)
    try:
        body = msg.get_content() if not msg.is_multipart() else None
        if body is not None:
            # MIME's canonical text form (inside base64) uses CRLF too; show it as read.
            body = body.replace("\r\n", "\n")
    except (KeyError, LookupError, ValueError) as e:
        body = "<undecodable body: %s>" % e
    return {
        "subject": str(msg["subject"]) if msg["subject"] is not None else None,
        "body": body,
        "headers": [[name, str(value)] for name, value in msg.items()],
    }


def make_authenticator(args):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode("utf-8", "replace") == args.auth_user
              and auth_data.password.decode("utf-8", "replace") == args.auth_password)
        if ok:
            session.pf_auth_mechanism = mechanism
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticate


def tls_context(args):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    return context


class SilentProtocol(asyncio.Protocol):
    """Holds the connection open and never answers."""

    def data_received(self, data):
        pass


def watch_stdin():
    """Exits when the parent closes our stdin (or dies), so no server outlives its test."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    args = parse_args()
    # aiosmtpd logs a deprecation notice for its own internals on every login.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if args.silent:
        factory = SilentProtocol
        ssl_context = None
    else:
        context = tls_context(args) if args.mode != "plain" else None
        handler = Recorder(args)
        offered = {m.strip().upper() for m in args.auth_mechanisms.split(",") if m.strip()}
        kwargs = dict(
            hostname=args.hostname,
            ident="postflight-test-smtpd",
            enable_SMTPUTF8=args.smtputf8,
            timeout=args.idle_timeout,
            auth_required=args.auth_required,
            # Implicit TLS is encrypted from the start, but aiosmtpd only counts STARTTLS.
            auth_require_tls=not (args.auth_over_plaintext or args.mode == "tls"),
            auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in offered],
            loop=loop,
        )
        if args.auth_user:
            kwargs["authenticator"] = make_authenticator(args)
        else:
            # No login configured: offer no AUTH at all.
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]
        if args.mode == "starttls":
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = args.require_starttls

        def factory():
            return SMTP(handler, **kwargs)

        ssl_context = context if args.mode == "tls" else None

    server = loop.run_until_complete(
        loop.create_server(factory, host="127.0.0.1", port=args.port, ssl=ssl_context)
    )
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    if args.stop_on_stdin_eof:
        threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        loop.run_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
