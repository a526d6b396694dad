"""A JSON-RPC 2.0 client on ``geworker.connect``, for examples/jsonrpc.py.

    python -m examples.jsonrpc_client text://127.0.0.1:2350

calls a few methods and prints what they answer. In your own code::

    with JsonRpcClient("text://127.0.0.1:2350") as rpc:
        rpc.call("subtract", 42, 23)                     # 19
        rpc.call("subtract", minuend=42, subtrahend=23)  # 19
        rpc.notify("update", 1, 2, 3)                    # no answer
        rpc.batch(("sum", [1, 2, 4]), ("get_data", []))  # [7, ["hello", 5]]

It works in a plain script (no monkey patching needed) and inside a worker.
"""

import itertools
import json
import sys

import geworker


class RpcError(Exception):
    """An error object the server answered with (``code``, ``message``, ``data``)."""

    def __init__(self, error: dict) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class JsonRpcClient:
    """JSON-RPC over one ``text://`` connection, one call (or batch) at a time."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.conn = geworker.connect(url, blocking=True, connect_timeout=timeout)
        self.timeout = timeout
        self.ids = itertools.count(1)

    def _request(self, method: str, params, with_id: bool = True) -> dict:
        request = {"jsonrpc": "2.0", "method": method}
        if params:
            request["params"] = params
        if with_id:
            request["id"] = next(self.ids)
        return request

    def _ask(self, request):
        self.conn.send(json.dumps(request))
        return json.loads(self.conn.receive(timeout=self.timeout))

    def call(self, method: str, *args, **kwargs):
        """The result of ``method(*args)`` or ``method(**kwargs)``; raises RpcError."""
        if args and kwargs:
            raise ValueError("JSON-RPC takes positional or named params, not both")
        response = self._ask(self._request(method, list(args) or kwargs))
        if "error" in response:
            raise RpcError(response["error"])
        return response["result"]

    def notify(self, method: str, *args, **kwargs) -> None:
        """Call ``method`` without waiting: the server answers nothing."""
        self.conn.send(json.dumps(self._request(method, list(args) or kwargs, with_id=False)))

    def batch(self, *calls):
        """Several ``(method, params)`` calls in one batch: their results, in order.

        A call that failed gives its RpcError in its place instead of a result.
        """
        requests = [self._request(method, params) for method, params in calls]
        by_id = {r["id"]: r for r in self._ask(requests)}
        return [RpcError(by_id[r["id"]]["error"]) if "error" in by_id[r["id"]]
                else by_id[r["id"]]["result"] for r in requests]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def main(url: str) -> None:
    with JsonRpcClient(url) as rpc:
        print("subtract(42, 23) =", rpc.call("subtract", 42, 23))
        print("subtract(minuend=42, subtrahend=23) =",
              rpc.call("subtract", minuend=42, subtrahend=23))
        rpc.notify("update", 1, 2, 3, 4, 5)
        print("batch sum(1, 2, 4), get_data() =", rpc.batch(("sum", [1, 2, 4]), ("get_data", [])))
        try:
            rpc.call("foobar")
        except RpcError as exc:
            print("foobar() ->", exc)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "text://127.0.0.1:2350")
