"""Operating an instance: the ``geworker`` command, status snapshots and metrics."""
