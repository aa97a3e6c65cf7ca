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
Which X-Forwarded-For/-Proto/-Host the app believes is decided by the app's TRUSTED_PROXIES
setting (werkzeug's ProxyFix, see README "Configuration"). gunicorn has its own trust list,
`forwarded_allow_ips`: the peers whose X-Forwarded-Proto (and X-Forwarded-Ssl, …) set the
request's scheme, which then shows in every link built without PUBLIC_URL. It follows
TRUSTED_PROXIES so the two never disagree: nobody while FLASK_TRUSTED_PROXIES is unset or 0
(gunicorn's own default would let any local process claim https), 127.0.0.1 and ::1 (a proxy
on this host, deploy/nginx.conf) when it is 1 or more. FORWARDED_ALLOW_IPS, gunicorn's own
environment variable, replaces that list when set: comma-separated addresses or networks of
the balancers (`10.0.0.0/24`), or `*` when only they can reach the port. Set TRUSTED_PROXIES
in the environment (not only in instance/config.py) for this file to see it; ProxyFix sets
the scheme from a trusted proxy itself in any case, so leaving gunicorn's list empty loses
nothing.

Restarts
--------
`kill -HUP <master>` reloads gracefully: the master re-reads this file, forks new workers
(which import the app's code afresh: nothing is preloaded) and tells the old ones to stop;
each old worker finishes the requests it has within `graceful_timeout`. The listening socket
stays open throughout, so no connection is refused, but a new one waits in its queue until a
new worker has imported the app (seconds; up to 7 s on a loaded 2-CPU test runner, see
tests/test_multihost.py). `kill -TERM` stops gracefully the same way (INT or QUIT stop at
once). A request still running after `graceful_timeout` is cut; behind nginx, which buffers
whole bodies before passing them on, 30 s is ample. Several hosts restart one at a time,
each drained from the balancer first, so nobody waits (README "Deployment").

MAX_REQUESTS (default 0: off) recycles a worker after that many requests, gracefully as on a
reload, with MAX_REQUESTS_JITTER (default a tenth of it) added at random so the workers do not
all restart together. Off by default because nothing here grows with use: every decoder and
renderer runs in a forked child that exits (README "Sizing the decoders"), and each recycle
drops the worker's warm connections and caches (and with WORKERS=1, the host pauses while the
replacement imports the app). Turn it on if a worker's memory is seen to creep (e.g.
MAX_REQUESTS=20000).
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
max_requests = int(os.environ.get("MAX_REQUESTS") or 0)  # 0: workers are never recycled
max_requests_jitter = int(os.environ.get("MAX_REQUESTS_JITTER") or max_requests // 10)


def _forwarded_allow_ips() -> str:
    """gunicorn's trust list for X-Forwarded-Proto: FORWARDED_ALLOW_IPS, else as TRUSTED_PROXIES."""
    given = os.environ.get("FORWARDED_ALLOW_IPS")
    if given is not None:
        return given
    hops = (os.environ.get("FLASK_TRUSTED_PROXIES") or "0").strip()
    return "127.0.0.1,::1" if hops.isdigit() and int(hops) > 0 else ""


forwarded_allow_ips = _forwarded_allow_ips()

accesslog = "-"  # stdout, in gunicorn's default (combined) format
errorlog = "-"  # stderr
logger_class = "app.access_log.MaskingLogger"
