"""WebSocket (RFC 6455, permessage-deflate) for ``websocket://`` and ``wss://`` listeners.

The sans-IO half: :mod:`~geworker.websocket.handshake` (the opening-handshake
checks, :class:`~geworker.websocket.handshake.WebSocketRequest` and its
decision), :mod:`~geworker.websocket.deflate` (offer negotiation, bounded
inflating), :mod:`~geworker.websocket.frames` (the fast frame codec) and
:mod:`~geworker.websocket.protocol` (the driver, wsproto underneath);
:mod:`~geworker.websocket._wsproto` is the one module that touches wsproto's
private state; :mod:`~geworker.websocket.client` is the client side
(``geworker.connect("ws://...")``). The runtime half is
:mod:`~geworker.websocket.connection` (the transport loop's WebSocket
connection and the upgrade from an ``http://`` connection) and
:mod:`~geworker.websocket.client_connection` (the client's).
"""
