"""A Flask app that pushes from its own process, through geworker's outside client.

    flask --app examples.push.website run --port 5000

Start it in the directory the push service (``examples/push/app.py``) was
started in: ``Messenger(app=...)`` finds the instance's run directory there,
as ``geworker status`` does (``GEWORKER_RUN_DIR`` names another), and talks
to its workers directly, with no HTTP hop and no secret (it must run as the
same user). With the Redis backend it would be ``Messenger("redis://...")``.

    curl -d '{"uid": "alice", "message": "your order shipped"}' \\
         -H 'Content-Type: application/json' 127.0.0.1:5000/notify

answers ``{"delivered": N}``, or 404 with ``{"delivered": 0}`` when alice has
no connection. A real website would check who is calling, and would hand its
logged-in users their tokens with ``examples.push.common.make_token``.
"""

import functools

from flask import Flask, request

from examples.push.common import deliver
from geworker import Messenger

app = Flask(__name__)


@functools.cache
def push_service() -> Messenger:
    """One Messenger for the process (it is safe to share between threads)."""
    return Messenger(app="examples.push.app:server")


@app.post("/notify")
def notify():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("uid"), str) or "message" not in body:
        return {"error": 'expected {"uid": "...", "message": ...}'}, 400
    delivered = deliver(push_service(), body["uid"], body["message"])
    return {"delivered": delivered}, 200 if delivered else 404
