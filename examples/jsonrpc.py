"""JSON-RPC 2.0 over text lines: one request (or batch) per line, one answer per line.

    gunicorn -k geworker.Worker -w 2 examples.jsonrpc:server

It listens on JSONRPC_ADDRESS (default 127.0.0.1:2350). Try it with::

    echo '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}' \\
        | nc -q1 127.0.0.1 2350

Methods are plain functions registered with ``@method``; params are passed as
positional (a list) or named (an object) arguments. Errors are the spec's
error objects: -32700 parse error, -32600 invalid request, -32601 method not
found, -32602 invalid params (the arguments do not fit the function), -32603
internal error (the method raised: logged with its traceback). Notifications
(no ``id``) get no answer, nor does a batch of notifications only.
``examples/jsonrpc_client.py`` is a client.
"""

import inspect
import json
import logging
import os

from geworker import Server

server = Server(f"text://{os.environ.get('JSONRPC_ADDRESS', '127.0.0.1:2350')}", name="jsonrpc")
log = logging.getLogger("jsonrpc")
METHODS = {}


def method(function):
    """Make ``function`` callable over JSON-RPC, under its own name."""
    METHODS[function.__name__] = function
    return function


@method
def subtract(minuend, subtrahend):
    return minuend - subtrahend


@method
def sum(*numbers):  # the spec's example name (hence no builtin sum here)
    total = 0
    for n in numbers:
        total += n
    return total


@method
def divide(dividend, divisor):
    return dividend / divisor


@method
def get_data():
    return ["hello", 5]


@method
def update(*values):
    log.info("update %s", values)


@method
def notify_hello(*values):
    log.info("hello %s", values)


def error(code, message, request_id=None):
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": request_id}


def valid_id(request_id) -> bool:
    return request_id is None or (isinstance(request_id, (str, int, float))
                                  and not isinstance(request_id, bool))


def handle(request):
    """The response object to one request, or None for a notification."""
    if (not isinstance(request, dict) or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
            or not isinstance(request.get("params", []), (list, dict))
            or not valid_id(request.get("id"))):
        return error(-32600, "Invalid Request")
    request_id = request.get("id")
    function = METHODS.get(request["method"])
    params = request.get("params", [])
    args, kwargs = (params, {}) if isinstance(params, list) else ([], params)
    if function is None:
        response = error(-32601, "Method not found", request_id)
    else:
        try:
            inspect.signature(function).bind(*args, **kwargs)
        except TypeError:
            response = error(-32602, "Invalid params", request_id)
        else:
            try:
                response = {"jsonrpc": "2.0", "result": function(*args, **kwargs),
                            "id": request_id}
            except Exception:
                log.exception("method %s raised", request["method"])
                response = error(-32603, "Internal error", request_id)
    return response if "id" in request else None


def answer(line: str):
    """The answer line to a request line, or None when nothing is to be answered."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return json.dumps(error(-32700, "Parse error"))
    if not isinstance(data, list):
        response = handle(data)
        return None if response is None else json.dumps(response)
    if not data:
        return json.dumps(error(-32600, "Invalid Request"))
    responses = [r for r in map(handle, data) if r is not None]
    return json.dumps(responses) if responses else None


@server.on_message
def on_line(conn, line: str) -> None:
    if line.strip():
        reply = answer(line)
        if reply is not None:
            conn.send(reply)
