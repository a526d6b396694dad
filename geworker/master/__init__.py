"""Inside gunicorn's master process: what geworker adds to the arbiter.

:mod:`~geworker.master.configure` is the entry point (from ``Worker.setup()``):
it applies the app's declared listeners to gunicorn's config, reading them
with :mod:`~geworker.master.probe` in a subprocess so the master never
imports the application; :mod:`~geworker.master.privileges` checks
``--user``/``--group``; :mod:`~geworker.master.record` keeps ``master.json``
in the run directory; :mod:`~geworker.master.metrics` serves the optional
Prometheus metrics; :mod:`~geworker.master.hooks` chains geworker's gunicorn
server hooks. The master sits above the worker layer: it imports
:mod:`geworker.worker.shared` (what workers inherit) and
:mod:`geworker.worker._gunicorn` (gunicorn internals), never the reverse.
"""
