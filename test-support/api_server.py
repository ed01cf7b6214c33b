#!/usr/bin/env python3
"""Local emulators of the email providers' HTTP APIs, for postflight's `api` plugin tests.

    api_server.py serve --record FILE --api-key KEY [options]
    api_server.py moto [--verify IDENTITY ...] [--region REGION ...]

`serve` (Python standard library only; `--tls` also needs `cryptography`) answers, on one port, the send endpoints of
SendGrid (POST /v3/mail/send), Mailgun (POST /v3/{domain}/messages), Postmark (POST /email),
Resend (POST /emails) and Amazon SES v2 (POST /v2/email/outbound-emails). It accepts only
requests that match each provider's documentation: method, path, auth header (SES: a SigV4
signature it recomputes), content type, JSON vs multipart form, required and allowed fields.
Anything else gets the provider's documented error shape. Each accepted request is appended
to the record file as one JSON line: provider, method, path, headers (lower-cased names),
and the parsed body ("json", or "form" as [name, value] pairs in order). A request answered
by a scripted action (below) is recorded too, with "scripted" and its "raw" body.

Scripted answers: --control FILE holds a JSON array of actions; each request (to a known
endpoint) takes the first one off the array before it is validated:

    {"status": 401}                     the provider's documented auth error
    {"status": 429, "retry_after": "7"} its rate-limit error, with Retry-After
    {"status": 500}                     its server error (any 5xx)
    {"status": N, "body": ..., "headers": {...}}   exactly this answer
    {"hang": 5}                         sleep 5 s, then answer 504 (nothing recorded)

`moto` starts moto's SES emulator (pip install "moto[server]") in this process, marks the
given identities (addresses or domains) verified, and serves it; moto keeps every message
sent and shows them at GET /moto-api/data.json (under "ses" -> "Message").

Both modes listen on 127.0.0.1, port 0, print `PORT n` as the first line of stdout, and exit
after --lifetime seconds, or when stdin is a pipe that reaches end of file (the test that
started them went away).
"""

import argparse
import base64
import datetime
import email.parser
import email.policy
import hashlib
import hmac
import ipaddress
import json
import os
import re
import stat
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMAIL_RE = re.compile(r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+$")


def log(*parts):
    print("api_server:", *parts, file=sys.stderr, flush=True)


def address_of(text):
    """The address in `addr` or `Name <addr>`, or None."""
    text = text.strip()
    if text.endswith(">") and "<" in text:
        text = text[text.rindex("<") + 1 : -1].strip()
    return text if EMAIL_RE.match(text) else None


def domain_of(address):
    return address.rsplit("@", 1)[1].lower()


class Reject(Exception):
    """A documented error answer: raise it from a validator."""

    def __init__(self, status, body, headers=None, reason=None):
        super().__init__(reason or str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.reason = reason or str(body)


class Accept:
    """A success answer; `record_extra` is merged into the recorded line."""

    def __init__(self, status, body, headers=None, record_extra=None):
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.record_extra = record_extra or {}


# --- request parsing ---------------------------------------------------------------------


def media_type(headers):
    value = headers.get("content-type", "")
    return value.split(";", 1)[0].strip().lower(), value


def parse_json(raw, error):
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise error(f"the body is not valid UTF-8 JSON: {e}")
    if not isinstance(value, dict):
        raise error("the JSON body is not an object")
    return value


def parse_multipart(raw, content_type):
    """[name, value] pairs of a multipart/form-data body, in order."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
    )
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    fields = []
    for part in message.iter_parts():
        if part.get_content_disposition() != "form-data":
            raise ValueError("a part is not form-data")
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("a part has no name")
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        fields.append([name, payload.decode(charset)])
    return fields


# --- SendGrid: POST /v3/mail/send ---------------------------------------------------------

SENDGRID_RESERVED = {
    "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type",
    "content-transfer-encoding", "to", "from", "subject", "reply-to", "cc", "bcc",
}
SENDGRID_TOP = {
    "personalizations", "from", "reply_to", "reply_to_list", "subject", "content",
    "attachments", "template_id", "headers", "categories", "custom_args", "send_at",
    "batch_id", "asm", "ip_pool_name", "mail_settings", "tracking_settings",
}


def sendgrid_error(status, message, field=None):
    return Reject(status, {"errors": [{"message": message, "field": field, "help": None}]})


def sendgrid_scripted(status, retry_after):
    headers = {}
    if status == 401:
        message = "The provided authorization grant is invalid, expired, or revoked"
    elif status == 403:
        message = "access forbidden"
    elif status == 429:
        message = "too many requests"
        reset = int(time.time()) + int(retry_after or 1)
        headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": str(reset)}
    elif status >= 500:
        message = "internal server error"
    else:
        message = "invalid request"
    error = sendgrid_error(status, message)
    error.headers.update(headers)
    return error


def sendgrid(server, handler, path, headers, raw):
    err = lambda m, f=None: sendgrid_error(400, m, f)  # noqa: E731
    if headers.get("authorization") != f"Bearer {server.api_key}":
        raise sendgrid_error(401, "The provided authorization grant is invalid, expired, or revoked")
    if media_type(headers)[0] != "application/json":
        raise sendgrid_error(415, "Content-Type should be application/json.")
    body = parse_json(raw, lambda m: err(m))
    unknown = set(body) - SENDGRID_TOP
    if unknown:
        raise err(f"unknown field(s) {sorted(unknown)}")
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise err("You must have at least one personalization.", "personalizations")
    for i, p in enumerate(personalizations):
        to = p.get("to")
        if not isinstance(to, list) or not to:
            raise err("The to array is required for all personalization objects, and must have at least one email object with a valid email address.", f"personalizations.{i}.to")
        for j, r in enumerate(to):
            if not isinstance(r, dict) or set(r) - {"email", "name"} or not EMAIL_RE.match(str(r.get("email", ""))):
                raise err("Does not contain a valid address.", f"personalizations.{i}.to.{j}.email")
    sender = body.get("from")
    if not isinstance(sender, dict) or not EMAIL_RE.match(str(sender.get("email", ""))) or set(sender) - {"email", "name"}:
        raise err("The from object must be provided for every email send. It is an object that requires the email parameter, but may also contain a name parameter.", "from.email")
    subject = body.get("subject")
    if not all(isinstance(p.get("subject", subject), str) and p.get("subject", subject) for p in personalizations):
        raise err("The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.", "subject")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise err("Unless a valid template_id is provided, the content parameter is required.", "content")
    for i, c in enumerate(content):
        if not isinstance(c, dict) or not c.get("type") or not isinstance(c.get("value"), str) or not c["value"]:
            raise err("The content value must be a string at least one character in length.", f"content.{i}.value")
    hdrs = body.get("headers", {})
    if not isinstance(hdrs, dict):
        raise err("The headers parameter must be a valid JSON object.", "headers")
    for name, value in hdrs.items():
        if name.lower() in SENDGRID_RESERVED:
            raise err(f"The header {name} is reserved and cannot be set.", "headers")
        if not isinstance(value, str) or not value.isascii() or "\n" in value or "\r" in value:
            raise err(f"Header values must be strings of printable ASCII; encode {name} first.", "headers")
    if server.verified and domain_of(sender["email"]) not in server.verified:
        raise sendgrid_error(403, "The from address does not match a verified Sender Identity. Mail cannot be sent until this error is resolved. Visit https://sendgrid.com/docs/for-developers/sending-email/sender-identity/ to see the Sender Identity requirements", "from")
    message_id = uuid.uuid4().hex[:22]
    return Accept(202, None, {"X-Message-Id": message_id}, {"message_id": message_id, "json": body})


# --- Mailgun: POST /v3/{domain}/messages ---------------------------------------------------

MAILGUN_FIELDS = {"from", "to", "cc", "bcc", "subject", "text", "html", "amp-html",
                  "template", "recipient-variables", "attachment", "inline"}


def mailgun_scripted(status, retry_after):
    if status == 401:
        return Reject(401, "Forbidden", {"Content-Type": "text/plain"})
    if status == 429:
        return Reject(429, {"message": "Too many requests"})
    if status >= 500:
        return Reject(status, {"message": "Internal Server Error"})
    return Reject(status, {"message": "Bad request"})


def mailgun(server, handler, path, headers, raw):
    domain = urllib.parse.unquote(path.split("/")[2])
    expected = "Basic " + base64.b64encode(f"api:{server.api_key}".encode()).decode()
    if headers.get("authorization") != expected:
        raise Reject(401, "Forbidden", {"Content-Type": "text/plain"}, "bad basic auth")
    if domain not in server.mailgun_domains:
        raise Reject(404, {"message": f"Domain not found: {domain}"})
    kind, full = media_type(headers)
    if kind != "multipart/form-data":
        raise Reject(400, {"message": "from parameter is missing"}, reason=f"content type {kind!r}, documented: multipart/form-data")
    try:
        fields = parse_multipart(raw, full)
    except (ValueError, UnicodeDecodeError) as e:
        raise Reject(400, {"message": f"invalid multipart body: {e}"})
    names = [n for n, _ in fields]
    for name in names:
        if name not in MAILGUN_FIELDS and not re.match(r"^[hvto]:.+", name):
            raise Reject(400, {"message": f"unknown parameter {name!r}"})
    values = lambda n: [v for k, v in fields if k == n]  # noqa: E731
    for required in ("from", "to", "subject"):
        if not values(required) or not all(v.strip() for v in values(required)):
            raise Reject(400, {"message": f"{required} parameter is missing"})
    if len(values("from")) != 1 or not address_of(values("from")[0]):
        raise Reject(400, {"message": f"from parameter is not a valid address. please check documentation"})
    for to in values("to"):
        for one in to.split(","):
            if not address_of(one):
                raise Reject(400, {"message": f"to parameter is not a valid address. please check documentation"})
    if not any(values(n) for n in ("text", "html", "amp-html", "template")):
        raise Reject(400, {"message": "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified"})
    if domain in server.mailgun_unverified:
        raise Reject(403, {"message": f"Domain {domain} is not allowed to send: The domain is unverified and requires DNS configuration. Log in to your control panel to view required DNS records."})
    message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().hex[:12]}@{domain}>"
    return Accept(200, {"id": message_id, "message": "Queued. Thank you."}, None,
                  {"message_id": message_id, "form": fields})


# --- Postmark: POST /email ------------------------------------------------------------------

POSTMARK_TOP = {"From", "To", "Cc", "Bcc", "Subject", "Tag", "HtmlBody", "TextBody",
                "ReplyTo", "Headers", "TrackOpens", "TrackLinks", "Metadata", "Attachments",
                "MessageStream"}


def postmark_error(code, message, status=422):
    return Reject(status, {"ErrorCode": code, "Message": message})


def postmark_scripted(status, retry_after):
    if status == 401:
        return postmark_error(10, "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token.", 401)
    if status == 429:
        return postmark_error(429, "Rate limit exceeded. Please slow down.", 429)
    if status >= 500:
        return Reject(status, "Internal Server Error", {"Content-Type": "text/plain"})
    return postmark_error(300, "Invalid email request", status)


def postmark(server, handler, path, headers, raw):
    token = headers.get("x-postmark-server-token")
    if not token:
        raise postmark_error(10, "Request does not contain a valid Server token.", 401)
    if token.lower() != server.api_key.lower():
        raise postmark_error(10, "The Server Token you provided in the X-Postmark-Server-Token request header was invalid. Please verify that you are using a valid token.", 401)
    if "application/json" not in headers.get("accept", "").lower():
        raise Reject(406, "Not Acceptable", {"Content-Type": "text/plain"}, "missing Accept: application/json")
    if media_type(headers)[0] != "application/json":
        raise postmark_error(409, "Requests must be made with 'application/json' content type.")
    body = parse_json(raw, lambda m: postmark_error(402, f"Received invalid JSON input. {m}"))
    unknown = set(body) - POSTMARK_TOP
    if unknown:
        raise postmark_error(403, f"Incompatible JSON input: unknown field(s) {sorted(unknown)}")
    sender = body.get("From")
    if not isinstance(sender, str) or not address_of(sender):
        raise postmark_error(300, "Invalid 'From' address: '{}'.".format(sender))
    to = body.get("To")
    if not isinstance(to, str) or not to.strip():
        raise postmark_error(300, "Invalid 'To' address: ''.")
    recipients = split_address_list(to)
    if len(recipients) > 50:
        raise postmark_error(300, "Too many recipients: maximum 50.")
    for r in recipients:
        if not address_of(r):
            raise postmark_error(300, f"Invalid 'To' address: '{r}'.")
    if not isinstance(body.get("Subject", ""), str):
        raise postmark_error(300, "Invalid 'Subject'.")
    if not (body.get("TextBody") or body.get("HtmlBody")):
        raise postmark_error(300, "Provide either email TextBody or HtmlBody or both.")
    for h in body.get("Headers", []):
        if not isinstance(h, dict) or set(h) != {"Name", "Value"} or not all(isinstance(h[k], str) for k in h):
            raise postmark_error(300, "Invalid 'Headers' item: each must be {\"Name\", \"Value\"}.")
    stream = body.get("MessageStream", "outbound")
    if stream not in server.postmark_streams:
        raise postmark_error(1235, f"The message stream for the provided 'ID' was not found.")
    if server.verified and domain_of(address_of(sender)) not in server.verified:
        raise postmark_error(400, f"The 'From' address you supplied ({sender}) is not a Sender Signature on your account. Please add and confirm this address in order to be able to use it in the 'From' field of your messages.")
    message_id = str(uuid.uuid4())
    submitted = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return Accept(200, {"To": to, "SubmittedAt": submitted, "MessageID": message_id,
                        "ErrorCode": 0, "Message": "OK"}, None,
                  {"message_id": message_id, "json": body})


def split_address_list(text):
    """Splits a comma-separated address list, honouring quoted display names."""
    parts, current, quoted, escaped = [], "", False, False
    for c in text:
        if escaped:
            current += c
            escaped = False
        elif c == "\\":
            current += c
            escaped = True
        elif c == '"':
            current += c
            quoted = not quoted
        elif c == "," and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += c
    if current.strip():
        parts.append(current.strip())
    return parts


# --- Resend: POST /emails -------------------------------------------------------------------

RESEND_TOP = {"from", "to", "subject", "bcc", "cc", "reply_to", "html", "text", "headers",
              "attachments", "tags", "scheduled_at", "template"}


def resend_error(status, name, message):
    return Reject(status, {"statusCode": status, "message": message, "name": name})


def resend_scripted(status, retry_after):
    if status == 401:
        return resend_error(401, "missing_api_key", "Missing API key in the authorization header")
    if status == 403:
        return resend_error(403, "invalid_api_key", "API key is invalid")
    if status == 429:
        return resend_error(429, "rate_limit_exceeded", "Too many requests. You can only make 2 requests per second. See rate limit response headers for more information. Or contact support to increase rate limit.")
    if status >= 500:
        return resend_error(status, "application_error", "An unexpected error occurred.")
    return resend_error(status, "validation_error", "We found an error with one or more fields in the request.")


def resend(server, handler, path, headers, raw):
    auth = headers.get("authorization")
    if not auth:
        raise resend_error(401, "missing_api_key", "Missing API key in the authorization header")
    if auth != f"Bearer {server.api_key}":
        raise resend_error(403, "invalid_api_key", "API key is invalid")
    if media_type(headers)[0] != "application/json":
        raise resend_error(400, "validation_error", "Content-Type must be application/json")
    key = headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 256:
        raise resend_error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
    body = parse_json(raw, lambda m: resend_error(400, "validation_error", m))
    unknown = set(body) - RESEND_TOP
    if unknown:
        raise resend_error(422, "validation_error", f"Unknown field(s) {sorted(unknown)}")
    missing = [f for f in ("from", "to", "subject") if not body.get(f)]
    if missing:
        raise resend_error(422, "missing_required_field", f"Missing `{missing[0]}` field.")
    if not isinstance(body["from"], str) or not address_of(body["from"]):
        raise resend_error(422, "invalid_from_address", "Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.")
    to = body["to"] if isinstance(body["to"], list) else [body["to"]]
    if len(to) > 50 or not all(isinstance(t, str) and address_of(t) for t in to):
        raise resend_error(422, "validation_error", "Invalid `to` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.")
    if "text" not in body and "html" not in body:
        raise resend_error(422, "validation_error", "Missing `html` or `text` field.")
    if not isinstance(body.get("headers", {}), dict) or not all(isinstance(v, str) for v in body.get("headers", {}).values()):
        raise resend_error(422, "validation_error", "`headers` must be an object of strings.")
    if server.verified and domain_of(address_of(body["from"])) not in server.verified:
        domain = domain_of(address_of(body["from"]))
        raise resend_error(403, "validation_error", f"The {domain} domain is not verified. Please, add and verify your domain on https://resend.com/domains")
    digest = hashlib.sha256(raw).hexdigest()
    with server.lock:
        if key is not None and key in server.idempotency:
            seen_digest, seen_id = server.idempotency[key]
            if seen_digest != digest:
                raise resend_error(409, "invalid_idempotent_request", "Same idempotency key used with a different request payload. Change your idempotency key or payload.")
            return Accept(200, {"id": seen_id}, None, {"message_id": seen_id, "json": body, "idempotent_replay": True})
        message_id = str(uuid.uuid4())
        if key is not None:
            server.idempotency[key] = (digest, message_id)
    return Accept(200, {"id": message_id}, None, {"message_id": message_id, "json": body})


# --- Amazon SES v2: POST /v2/email/outbound-emails -----------------------------------------

SES_TOP = {"FromEmailAddress", "FromEmailAddressIdentityArn", "Destination", "ReplyToAddresses",
           "FeedbackForwardingEmailAddress", "FeedbackForwardingEmailAddressIdentityArn",
           "Content", "EmailTags", "ConfigurationSetName", "EndpointId", "TenantName",
           "ListManagementOptions"}
HEADER_NAME_RE = re.compile(r"^[!-9;-@A-~]+$")
HEADER_VALUE_RE = re.compile(r"^[ -~]*$")


def ses_error(status, kind, message):
    return Reject(status, {"message": message},
                  {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazonaws.sesv2/"})


def ses_scripted(status, retry_after):
    if status in (401, 403):
        return ses_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if status == 429:
        return ses_error(429, "TooManyRequestsException", "Too Many Requests")
    if status >= 500:
        return ses_error(status, "InternalFailure", "The request processing has failed because of an unknown error, exception or failure.")
    return ses_error(status, "BadRequestException", "Bad request")


def sigv4_check(server, method, path, headers, raw):
    """Recomputes the AWS Signature Version 4 of the request (header form)."""
    auth = headers.get("authorization", "")
    m = re.match(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$", auth)
    if not m:
        raise ses_error(403, "IncompleteSignature", f"Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
    key_id, date, region, service, signed, signature = m.groups()
    if key_id != server.aws_key_id:
        raise ses_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    if service != "ses":
        raise ses_error(403, "InvalidSignatureException", f"Credential should be scoped to correct service: 'ses'.")
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise ses_error(403, "IncompleteSignature", "X-Amz-Date is missing or malformed.")
    if amz_date[:8] != date:
        raise ses_error(403, "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.")
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
        raise ses_error(403, "InvalidSignatureException", "Signature expired: the request time is too far from the server time.")
    signed_list = signed.split(";")
    for required in ["host", "x-amz-date"] + (["x-amz-security-token"] if "x-amz-security-token" in headers else []):
        if required not in signed_list:
            raise ses_error(403, "InvalidSignatureException", f"'{required}' must be a signed header.")
    if server.aws_session_token is not None and headers.get("x-amz-security-token") != server.aws_session_token:
        raise ses_error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').strip().split())}\n" for h in signed_list)
    canonical = "\n".join([method, urllib.parse.quote(path, safe="/-_.~"), "", canonical_headers, signed,
                           hashlib.sha256(raw).hexdigest()])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + server.aws_secret).encode()
    for part in (date, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise ses_error(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
    return region


def ses(server, handler, path, headers, raw):
    region = sigv4_check(server, "POST", path, headers, raw)
    if media_type(headers)[0] != "application/json":
        raise ses_error(400, "SerializationException", "Content-Type must be application/json")
    body = parse_json(raw, lambda m: ses_error(400, "SerializationException", m))
    unknown = set(body) - SES_TOP
    if unknown:
        raise ses_error(400, "SerializationException", f"Unknown field(s) {sorted(unknown)}")
    sender = body.get("FromEmailAddress")
    if not isinstance(sender, str) or not sender.isascii() or not address_of(sender):
        raise ses_error(400, "BadRequestException", "Illegal address: FromEmailAddress must be ASCII, a non-ASCII display name MIME-encoded (RFC 2047).")
    destination = body.get("Destination", {})
    if not isinstance(destination, dict) or set(destination) - {"ToAddresses", "CcAddresses", "BccAddresses"}:
        raise ses_error(400, "SerializationException", "Invalid Destination")
    to = destination.get("ToAddresses", [])
    if not to or len(to) > 50 or not all(isinstance(t, str) and t.isascii() and address_of(t) for t in to):
        raise ses_error(400, "BadRequestException", "Illegal address in Destination.ToAddresses.")
    content = body.get("Content")
    if not isinstance(content, dict) or len(set(content) & {"Simple", "Raw", "Template"}) != 1 or set(content) - {"Simple", "Raw", "Template"}:
        raise ses_error(400, "BadRequestException", "Content must contain exactly one of Simple, Raw or Template.")
    simple = content.get("Simple")
    if simple is None:
        raise ses_error(400, "BadRequestException", "this emulator only implements Content.Simple")
    if set(simple) - {"Subject", "Body", "Headers", "Attachments"}:
        raise ses_error(400, "SerializationException", "Unknown field in Content.Simple")

    def check_content(obj, where):
        if not isinstance(obj, dict) or set(obj) - {"Data", "Charset"} or not isinstance(obj.get("Data"), str):
            raise ses_error(400, "BadRequestException", f"{where} must be {{Data, Charset}}")
        if obj.get("Charset", "UTF-8").upper() not in ("UTF-8", "ISO-8859-1", "SHIFT_JIS"):
            raise ses_error(400, "BadRequestException", f"Unsupported charset in {where}")

    check_content(simple.get("Subject"), "Subject")
    email_body = simple.get("Body")
    if not isinstance(email_body, dict) or not (set(email_body) & {"Text", "Html"}) or set(email_body) - {"Text", "Html"}:
        raise ses_error(400, "BadRequestException", "Body must contain Text or Html")
    for part in email_body:
        check_content(email_body[part], f"Body.{part}")
    for h in simple.get("Headers", []):
        if (not isinstance(h, dict) or set(h) != {"Name", "Value"}
                or not HEADER_NAME_RE.match(str(h["Name"])) or len(h["Name"]) > 126
                or not HEADER_VALUE_RE.match(str(h["Value"])) or not h["Value"] or len(h["Value"]) > 870):
            raise ses_error(400, "BadRequestException", f"Invalid message header {h!r}")
    if server.verified and domain_of(address_of(sender)) not in server.verified:
        raise ses_error(400, "MessageRejected", f"Email address is not verified. The following identities failed the check in region {region.upper()}: {address_of(sender)}")
    message_id = f"0100018c{uuid.uuid4().hex}-000000"
    return Accept(200, {"MessageId": message_id}, None,
                  {"message_id": message_id, "json": body, "region": region})


# --- the server -------------------------------------------------------------------------------

ROUTES = [
    ("sendgrid", re.compile(r"^/v3/mail/send$"), sendgrid, sendgrid_scripted),
    ("mailgun", re.compile(r"^/v3/[^/]+/messages$"), mailgun, mailgun_scripted),
    ("postmark", re.compile(r"^/email$"), postmark, postmark_scripted),
    ("resend", re.compile(r"^/emails$"), resend, resend_scripted),
    ("ses", re.compile(r"^/v2/email/outbound-emails$"), ses, ses_scripted),
]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "postflight-api-emulator/1"

    def log_message(self, fmt, *args):
        log(self.address_string(), fmt % args)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, body, headers=None):
        headers = dict(headers or {})
        if body is None:
            payload = b""
        elif isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        else:
            payload = str(body).encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            log("the client went away before the answer")  # e.g. after a scripted hang

    def do_POST(self):
        self.handle_request("POST")

    def do_GET(self):
        self.handle_request("GET")

    def do_PUT(self):
        self.handle_request("PUT")

    def handle_request(self, method):
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        raw = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = next((r for r in ROUTES if r[1].match(path)), None)
        if route is None:
            log(f"{method} {path}: no such endpoint")
            return self.answer(404, {"message": "Not Found"})
        provider, _, validate, scripted = route
        if method != "POST":
            log(f"{method} {path}: method not allowed")
            return self.answer(405, {"message": "Method Not Allowed"})
        action = self.server.next_action()
        if action is not None:
            log(f"{provider}: scripted {action}")
            self.server.record({"provider": provider, "method": method, "path": path,
                                "query": parsed.query, "headers": headers,
                                "scripted": action, "raw": raw.decode("utf-8", "replace")})
            if "hang" in action:
                time.sleep(float(action["hang"]))
                return self.answer(504, {"message": "Gateway Timeout"})
            status = int(action["status"])
            if "body" in action:
                return self.answer(status, action["body"], action.get("headers"))
            reject = scripted(status, action.get("retry_after"))
            extra = dict(action.get("headers") or {})
            if action.get("retry_after") is not None:
                extra["Retry-After"] = str(action["retry_after"])
            return self.answer(reject.status, reject.body, {**reject.headers, **extra})
        try:
            result = validate(self.server, self, path, headers, raw)
        except Reject as reject:
            log(f"{provider}: refused with {reject.status}: {reject.reason}")
            return self.answer(reject.status, reject.body, reject.headers)
        record = {"provider": provider, "method": method, "path": path,
                  "query": parsed.query, "headers": headers, "status": result.status}
        record.update(result.record_extra)
        self.server.record(record)
        return self.answer(result.status, result.body, result.headers)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", 0), Handler)
        self.api_key = args.api_key
        self.record_path = args.record
        self.control_path = args.control
        self.verified = {d.lower() for d in args.verified_domain}
        self.mailgun_domains = set(args.mailgun_domain) | set(args.mailgun_unverified_domain)
        self.mailgun_unverified = set(args.mailgun_unverified_domain)
        self.postmark_streams = {"outbound"} | set(args.postmark_stream)
        self.aws_key_id = args.aws_access_key_id
        self.aws_secret = args.aws_secret_access_key
        self.aws_session_token = args.aws_session_token
        self.idempotency = {}
        self.lock = threading.Lock()

    def next_action(self):
        if not self.control_path:
            return None
        with self.lock:
            try:
                with open(self.control_path, encoding="utf-8") as f:
                    actions = json.load(f)
            except FileNotFoundError:
                return None
            if not actions:
                return None
            action = actions.pop(0)
            tmp = self.control_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(actions, f)
            os.replace(tmp, self.control_path)
            return action

    def record(self, entry):
        with self.lock:
            with open(self.record_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
                f.flush()


def exit_when_orphaned(lifetime):
    """Ends the process when stdin closes (the test is gone) or after `lifetime` seconds."""

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(1024):
                pass
        except (OSError, ValueError):
            pass
        os._exit(0)

    try:
        piped = stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode)
    except (OSError, ValueError):
        piped = False
    if piped:  # a terminal or /dev/null is no sign of an owner going away
        threading.Thread(target=watch_stdin, daemon=True).start()
    timer = threading.Timer(lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()


def self_signed_context():
    """A TLS context with a fresh self-signed certificate for 127.0.0.1 (needs the
    `cryptography` package), so tests can see a client refuse an untrusted server."""
    import ssl
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "postflight test server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory = tempfile.mkdtemp(prefix="api-server-tls-")
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def serve(args):
    server = Server(args)
    if args.tls:
        server.socket = self_signed_context().wrap_socket(server.socket, server_side=True)
    print(f"PORT {server.server_address[1]}", flush=True)
    exit_when_orphaned(args.lifetime)
    server.serve_forever()


def moto(args):
    try:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.server import ThreadedMotoServer
        from moto.ses.models import ses_backends
    except ImportError as e:
        sys.exit(f"api_server: moto is not installed ({e}); run: .venv/bin/pip install -r test-support/requirements.txt")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    for region in args.region:
        backend = ses_backends[DEFAULT_ACCOUNT_ID][region]
        for identity in args.verify:
            if "@" in identity:
                backend.verify_email_identity(identity)
            else:
                backend.verify_domain(identity)
    print(f"PORT {server.get_host_and_port()[1]}", flush=True)
    exit_when_orphaned(args.lifetime)
    threading.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve", help="emulate the five providers' send endpoints")
    s.add_argument("--record", required=True, help="append accepted requests here (JSON lines)")
    s.add_argument("--control", help="JSON array of scripted answers, consumed one per request")
    s.add_argument("--api-key", required=True, help="the key SendGrid/Mailgun/Postmark/Resend must present")
    s.add_argument("--verified-domain", action="append", default=[],
                   help="sender domains the account has verified (default: any)")
    s.add_argument("--mailgun-domain", action="append", default=[], help="a verified Mailgun sending domain")
    s.add_argument("--mailgun-unverified-domain", action="append", default=[],
                   help="a Mailgun domain that exists but is not verified yet")
    s.add_argument("--postmark-stream", action="append", default=[], help="another Postmark message stream")
    s.add_argument("--aws-access-key-id", default="AKIDPOSTFLIGHTTEST")
    s.add_argument("--aws-secret-access-key", default="postflight/test/secret")
    s.add_argument("--aws-session-token", help="require this session token")
    s.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a fresh self-signed certificate (needs `cryptography`)")
    s.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds")
    m = sub.add_parser("moto", help="run moto's SES emulator")
    m.add_argument("--verify", action="append", default=[], help="identity (address or domain) to verify")
    m.add_argument("--region", action="append", default=None, help="region(s) to verify identities in")
    m.add_argument("--lifetime", type=float, default=600, help="exit after this many seconds")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args)
    else:
        args.region = args.region or ["us-east-1"]
        moto(args)


if __name__ == "__main__":
    main()
