"""WebSocket (RFC 6455, permessage-deflate) for ``websocket://`` and ``wss://`` listeners.

The sans-IO half is :mod:`~geworker.websocket.protocol` (handshake checks, the
frame codec, wsproto underneath); the runtime half is
:mod:`~geworker.websocket.connection` (the transport loop's WebSocket
connection and the upgrade from an ``http://`` connection).
"""
