"""gunicorn settings for Chartbox: `gunicorn -c gunicorn.conf.py wsgi:app` (what `make run` runs).

Serving model
-------------
One master process forks WORKERS worker processes (default 2); each worker runs the app in
`threads` threads (gthread), so 2 x 4 = 8 requests are in flight at once. Workers share
nothing in memory: the database (SQLite in WAL mode, or PostgreSQL), the file storage and
the sign-in throttle (counted in the database or Redis) are what they share, which is also
why several hosts behind a load balancer can serve the same clinic. A request, upload or
download that takes longer than `timeout` seconds gets its worker killed and replaced (an
interrupted upload leaves only debris that `chartbox files cleanup` removes); on a stop or
reload, a worker has `graceful_timeout` seconds to finish what it is serving.
(The worker model is revisited in a later issue; this file keeps the current behaviour.)

Where it listens: HOST and PORT from the environment (`make run` passes its own, default
127.0.0.1:8000; `PORT=9000 make run`), WORKERS likewise. The command line and
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

worker_class = "gthread"
workers = int(os.environ.get("WORKERS") or 2)
threads = 4
timeout = 60  # seconds a worker may spend on one request before it is killed and replaced
graceful_timeout = 30  # seconds a worker has to finish its requests on stop or reload

accesslog = "-"  # stdout, in gunicorn's default (combined) format
errorlog = "-"  # stderr
logger_class = "app.access_log.MaskingLogger"
