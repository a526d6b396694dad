"""The transport layer: sockets, greenlets and the one read loop every protocol rides.

This is the lowest layer that imports gevent.

- :mod:`~geworker.transport.connection`: the public ``Connection`` API, its
  lifecycle transitions and the read loop;
- :mod:`~geworker.transport.state`: ``ConnectionState`` and the table of
  allowed transitions;
- :mod:`~geworker.transport.writer`: the send queue, corking, the
  non-blocking (plain and TLS) sender and the writer greenlet;
- :mod:`~geworker.transport.parking`: silent connections without a greenlet;
- :mod:`~geworker.transport.tls`: the server side of the TLS handshake;
- :mod:`~geworker.transport.datagram`: UDP;
- :mod:`~geworker.transport.client`: connections geworker opens
  (``geworker.connect``), with :mod:`~geworker.transport.outbound` (DNS,
  connect, proxy tunnel, TLS), :mod:`~geworker.transport.backoff`
  (reconnect delays), :mod:`~geworker.transport.blocking` (``receive()``
  and friends) and :mod:`~geworker.transport.udp_client`;
- :mod:`~geworker.transport.pipe`: ``conn.pipe(dest)``, forwarding with flow control;
- :mod:`~geworker.transport._gevent`: every use of gevent's private internals.
"""
