"""WSGI hello for ``gunicorn -k gevent``."""

HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "5")]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [b"hello"]
