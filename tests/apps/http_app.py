"""The HTTP app the integration tests run under gunicorn (tests/integration/test_http.py).

Configured by environment: HTTP_URL (listener), STATIC_ROOT (served under /static/).
"""

import hashlib
import os

import gevent

from geworker import Server
from geworker.http import EventStream, FileResponse, HTTPError, Response
from geworker.http.static import StaticFiles

server = Server(
    os.environ["HTTP_URL"],
    name="http-test",
    http_head_timeout=1.0,
    http_body_timeout=1.0,
    http_keepalive_timeout=2.0,
    http_max_body_size=2 * 1024 * 1024,
    http_max_requests_per_connection=50,
)
ROOT = os.environ["STATIC_ROOT"]
static = StaticFiles(ROOT, prefix="/static/")
streams: list[EventStream] = []


def push_events(stream: EventStream) -> None:
    """Runs in its own greenlet: the SSE stream is fed from outside the handler."""
    for i in range(3):
        gevent.sleep(0.05)
        stream.send(f"tick {i}\nsecond line", event="tick", id=str(i))
    stream.close()


@server.on_message
def handle(conn, req):
    path = req.path
    if path.startswith("/static/"):
        conn.send(static.response(req))
    elif path == "/":
        conn.send("hello")
    elif req.target == "*":  # OPTIONS * (the parser refuses "*" with other methods)
        conn.send(Response(b"", status=204, headers={"Allow": "GET, POST, OPTIONS"}))
    elif path == "/pid":
        conn.send(str(os.getpid()))
    elif path == "/info":
        conn.send({
            "method": req.method, "target": req.target, "path": req.path,
            "query": req.query.items(), "version": req.http_version,
            "headers": req.headers.items(), "cookies": req.cookies,
            "remote": list(req.remote_address), "body_size": len(req.body),
        })
    elif path == "/echo":
        conn.send(Response(req.body, headers={"X-Method": req.method}))
    elif path == "/json":
        conn.send({"got": req.json})
    elif path == "/form":
        files = []
        for name, up in req.files.items():
            files.append({"name": name, "filename": up.filename, "size": up.size,
                          "type": up.content_type, "on_disk": bool(up.file._rolled),
                          "sha256": hashlib.sha256(up.read()).hexdigest()})
        conn.send({"form": req.form.items(), "files": files})
    elif path == "/cookie":
        r = Response("cookies set")
        r.set_cookie("sid", "abc123", max_age=3600, httponly=True, samesite="Strict",
                     secure=True)
        r.delete_cookie("old")
        conn.send(r)
    elif path == "/stream":
        conn.send(Response(f"part{i}\n" for i in range(5)))
    elif path == "/stream-length":
        conn.send(Response(iter([b"abc", b"de"]), headers={"Content-Length": "5"}))
    elif path == "/blob":
        conn.send(b"b" * int(req.query["n"]))
    elif path == "/big":
        conn.send(FileResponse(os.path.join(ROOT, "big.bin")))
    elif path == "/inject":
        conn.send(Response("x", headers={"X-Evil": "a\r\nSet-Cookie: pwn=1"}))
    elif path == "/raise":
        raise RuntimeError("boom")
    elif path == "/teapot":
        raise HTTPError(418, "short and stout")
    elif path == "/noanswer":
        pass
    elif path == "/sse":
        stream = EventStream()
        conn.send(stream)
        gevent.spawn(push_events, stream)
    elif path == "/slow":
        gevent.sleep(float(req.query.get("s", "0.3")))
        conn.send("slow")
    else:
        raise HTTPError(404)
