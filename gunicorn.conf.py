"""gunicorn settings for Chartbox: `gunicorn -c gunicorn.conf.py wsgi:app` (what `make run` runs).

Serving model
-------------
One master process forks WORKERS worker processes (default 2); each runs the app in THREADS
threads (default 128) of gunicorn's gthread worker, extended by app.serving.ThreadWorker.
Why threads and not an asynchronous worker (gevent): the embedded database is SQLite, whose
locks wait inside C — a greenlet holding a write lock while another waits for it would stall
its whole worker — and the CPU-heavy work (hashing, parsing, rendering) runs in threads and
forked children that an event loop would have to be taught about. Threads idle on a socket
cost little (one stack each), so many of them absorb many slow clients; and the deadlines
make sure no slow client keeps one long:

- idle connections (kept alive, or opened and silent) wait in the worker's poller, not in a
  thread (gthread's own behaviour, at most `keepalive` seconds);
- HEADER_TIMEOUT (default 10 s): a request's line and headers must all have arrived this long
  after the thread started reading them, else 408 and the connection is closed (slowloris);
- BODY_IDLE_TIMEOUT (default 30 s): no pause between two pieces of a body longer than this;
- BODY_MIN_RATE bytes/s (default 2048) after BODY_GRACE s (default 10): a body arriving slower
  than that on average is cut with a 408 in the door's error shape. A phone uploading 25 MB at
  100 KB/s on 3G is 50 times faster than the minimum and is never cut.

So 2 x 128 threads stay answering ordinary clients while a hundred or more connections trickle
(tests/abuse/test_slow_clients.py). Behind nginx (deploy/nginx.conf), which buffers whole
requests and has its own timeouts, these clocks never run out. Settings are environment
variables (0 turns a check off). A long request does not get its worker killed: in gthread the
worker's main thread keeps reporting to the master, so `timeout` only catches a worker that
hangs as a whole; a stopping or reloading worker has `graceful_timeout` seconds to finish.

Where it listens: HOST and PORT from the environment (`make run` passes its own, default
127.0.0.1:8000; `PORT=9000 make run`), WORKERS and THREADS likewise. The command line and
GUNICORN_CMD_ARGS still override anything set here.

Logs
----
The access log goes to stdout, the error log to stderr. Signed links carry their secret in
the query string (`auth_code`; Candid's signed URL even accepts a PUT) and API clients send
tokens in headers, so the logger class masks them: `?auth_code=***&time=…`, `***` for
Authorization, X-ApiToken, X-API-Key and Cookie (see app/access_log.py). Keep
`logger_class` whatever else changes here: gunicorn's default logger writes every signed
link whole. (`statsd_host` does nothing while it is set: gunicorn swaps in its statsd logger
only in place of the default one.) A custom `access_log_format` may name any atom, headers
included; they are masked all the same.

Proxies
-------
`forwarded_allow_ips` is left at gunicorn's default (127.0.0.1 and ::1, or the
FORWARDED_ALLOW_IPS environment variable): gunicorn believes X-Forwarded-Proto from those
addresses only. Which X-Forwarded-For/-Proto/-Host the app itself believes is decided by the
app's TRUSTED_PROXIES setting (werkzeug's ProxyFix, see README "Configuration"), not here.
"""
import os

_host = os.environ.get("HOST") or "127.0.0.1"
if ":" in _host and not _host.startswith("["):
    _host = f"[{_host}]"  # an IPv6 address
bind = [f"{_host}:{os.environ.get('PORT') or '8000'}"]

worker_class = "app.serving.ThreadWorker"  # gthread, plus deadlines for slow clients
workers = int(os.environ.get("WORKERS") or 2)
threads = int(os.environ.get("THREADS") or 128)
timeout = 60  # seconds a worker as a whole may stop reporting before the master replaces it
graceful_timeout = 30  # seconds a worker has to finish its requests on stop or reload

accesslog = "-"  # stdout, in gunicorn's default (combined) format
errorlog = "-"  # stderr
logger_class = "app.access_log.MaskingLogger"
