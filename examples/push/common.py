"""What the push server and the website share: signed uid tokens, and delivery.

A token is ``uid:expires:signature``, the signature being HMAC-SHA256 of
``uid:expires`` under the shared secret. Whoever knows the secret (the
website, after the user logged in) issues tokens; the push server checks
them before it binds a connection to a uid, so nobody can receive someone
else's messages.
"""

import hashlib
import hmac
import json
import time


class BadToken(Exception):
    """A token that is malformed, forged or expired (the message says which)."""


def _signature(uid: str, expires: int, secret: str) -> str:
    return hmac.new(secret.encode(), f"{uid}:{expires}".encode(), hashlib.sha256).hexdigest()


def make_token(uid: str, secret: str, ttl: float = 3600.0) -> str:
    """A token that lets its holder bind ``uid`` for the next ``ttl`` seconds."""
    expires = int(time.time() + ttl)
    return f"{uid}:{expires}:{_signature(uid, expires, secret)}"


def check_token(token: str, secret: str) -> str:
    """The uid ``token`` was issued for.

    Raises:
        BadToken: when it is malformed, its signature is wrong, or it expired.
    """
    parts = token.rsplit(":", 2)  # a uid may hold ":" itself
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
        raise BadToken("malformed token")
    uid, expires, signature = parts
    if not hmac.compare_digest(signature, _signature(uid, int(expires), secret)):
        raise BadToken("bad token signature")
    if int(expires) < time.time():
        raise BadToken("token expired")
    return uid


def deliver(api, uid: str, message) -> int:
    """Push ``message`` (any JSON value) to every connection bound to ``uid``.

    ``api`` is ``geworker.messaging`` inside a worker or a ``geworker.Messenger``
    outside. Returns how many connections it was handed to (0: none is
    online). Clients receive the JSON text ``{"message": message}``.
    """
    online = len(api.client_ids_of_uid(uid))
    if online:
        api.send_to_uid(uid, json.dumps({"message": message}))
    return online
