"""Inside gunicorn's master process: what geworker adds to the arbiter.

:mod:`~geworker.master.configure` applies the app's declared listeners to
gunicorn's config; :mod:`~geworker.master.probe` reads them from the app in a
subprocess, so the master never imports the application.
"""
