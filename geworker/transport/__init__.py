"""The transport layer: sockets, greenlets and the one read loop every protocol rides.

:mod:`~geworker.transport.connection` holds stream connections (the public
``Connection`` API and the read loop); :mod:`~geworker.transport.datagram`
holds UDP. This is the lowest layer that imports gevent.
"""
