"""Operating an instance from outside: the ``geworker`` command and what it reports.

:mod:`~geworker.ops.cli` is the command; :mod:`~geworker.ops.report` reads
the run directory (:mod:`geworker.rundir`) for ``status`` and ``connections``
and formats it. This is the top layer: it may import everything below.
"""
