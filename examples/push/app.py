"""A push service: clients bind a uid over WebSocket, anyone with the secret pushes to it.

    PUSH_SECRET=change-me gunicorn -k geworker.Worker -w 4 examples.push.app:server

One port (PUSH_ADDRESS, default 127.0.0.1:8090) serves both sides:

- ``ws://127.0.0.1:8090/ws``: a client connects and sends its token as its
  first message; the answer is ``{"bound": uid, "client_id": ...}``, then
  every push arrives as ``{"message": ...}``. A malformed, forged or expired
  token closes the connection with code 1008 and the reason as its text.
- ``GET /token?uid=alice`` with the header ``X-Push-Secret``: ``{"token": ...}``
  (or call ``examples.push.common.make_token`` where the secret is known).
- ``POST /push`` with ``X-Push-Secret`` and ``{"uid": ..., "message": ...}``:
  delivered to every connection of that uid, whichever worker holds it.
  200 ``{"delivered": N}``; 404 ``{"delivered": 0}`` when the uid has no
  connection (nothing is kept for later); 401 without the right secret;
  400 for a body that is not such a JSON object.

Try it::

    curl -H 'X-Push-Secret: change-me' '127.0.0.1:8090/token?uid=alice'
    curl -H 'X-Push-Secret: change-me' -d '{"uid": "alice", "message": "hi"}' 127.0.0.1:8090/push

``examples/push/website.py`` is a separate Flask app that pushes from its
own process.
"""

import hmac
import json
import os

from examples.push.common import BadToken, check_token, deliver, make_token
from geworker import Server, messaging
from geworker.http import Response

SECRET = os.environ.get("PUSH_SECRET", "")
if not SECRET:
    raise RuntimeError("set PUSH_SECRET: the secret shared with whoever pushes and issues tokens")

server = Server(f"http://{os.environ.get('PUSH_ADDRESS', '127.0.0.1:8090')}", name="push")


def authorized(request) -> bool:
    given = request.headers.get("x-push-secret", "")
    return hmac.compare_digest(given.encode(), SECRET.encode())


@server.on_message
def http(conn, request) -> None:
    if request.path == "/push" and request.method == "POST":
        conn.send(push(request))
    elif request.path == "/token" and request.method == "GET":
        conn.send(token(request))
    else:
        conn.send(Response({"error": "not found"}, 404))


def push(request) -> Response:
    if not authorized(request):
        return Response({"error": "wrong or missing X-Push-Secret"}, 401)
    try:
        body = json.loads(request.body)
    except ValueError:
        return Response({"error": "the body is not JSON"}, 400)
    if not isinstance(body, dict) or not isinstance(body.get("uid"), str) or "message" not in body:
        return Response({"error": 'expected {"uid": "...", "message": ...}'}, 400)
    delivered = deliver(messaging, body["uid"], body["message"])
    return Response({"delivered": delivered}, 200 if delivered else 404)


def token(request) -> Response:
    if not authorized(request):
        return Response({"error": "wrong or missing X-Push-Secret"}, 401)
    uid = request.query.get("uid")
    if not uid:
        return Response({"error": "give ?uid="}, 400)
    return Response({"token": make_token(uid, SECRET)})


@server.on_websocket_connect
def open_socket(conn, request) -> None:
    if request.path != "/ws":
        request.reject(404)


@server.on_websocket_message
def bind(conn, message) -> None:
    if conn.uid is not None:
        return  # bound already: this service only pushes
    try:
        uid = check_token(message if isinstance(message, str) else "", SECRET)
    except BadToken as exc:
        conn.close(code=1008, reason=str(exc))  # 1008: policy violation
        return
    conn.bind_uid(uid)
    conn.send(json.dumps({"bound": uid, "client_id": conn.client_id}))
