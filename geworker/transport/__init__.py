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
- :mod:`~geworker.transport._gevent`: every use of gevent's private internals.
"""
