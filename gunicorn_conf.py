"""geworker's recommended gunicorn settings: ``gunicorn -c gunicorn_conf.py app:server``.

Addresses are not set here: they are declared in the app (``Server("text://...")``).
This file must never import the app (the master would then run stale code
after a reload, outside gevent's monkey patching).
"""

import multiprocessing
import os

# The geworker worker class: gevent greenlets, one per connection.
worker_class = "geworker.Worker"

# One worker per CPU core: each worker is a single-threaded gevent loop.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))

# Connections per worker: left unset, geworker holds as many as the open-file
# limit allows ('ulimit -n' less 256 descriptors of headroom; an idle
# connection costs 1-4 KB). Set worker_connections to cap it lower.

# The master kills a worker whose heartbeat is older than this (seconds).
# A callback that burns CPU this long takes its worker's connections down.
timeout = 30

# On TERM/HUP a worker stops accepting, drains idle connections at once,
# lets messages in progress finish, and is killed after this many seconds.
graceful_timeout = 30

# Recycle a worker after this many received messages (0: never); the jitter
# keeps workers from restarting together.
max_requests = 0
max_requests_jitter = 0

# control_socket is left to geworker: each instance gets its own, in its run
# directory (.geworker/<app>-<digest of its listeners>/gunicorn.ctl), so two
# instances never take over each other's socket. Set it to choose another path.

# Logs to stderr; set errorlog/accesslog to files for daemon mode.
errorlog = "-"
loglevel = "info"
