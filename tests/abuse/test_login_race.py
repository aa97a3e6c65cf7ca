"""Password guessing against `make run`'s gunicorn (two worker processes, one database).

64 real threads send a wrong password for one username at the same moment, half through the
sign-in page and half through tscharts' login: the throttle reserves each check before it is
made, so at most LOGIN_ATTEMPTS passwords are checked (counted from the audit trail: one
sign-in event per check) and every other attempt gets 429 with Retry-After. Then password
spraying: 40 usernames from one address, refused after LOGIN_SPRAY_USERNAMES. Meanwhile the
probe (an ordinary patient on another address) keeps working, and signs in at the end.
"""
from __future__ import annotations

import json
import re
import threading
from urllib.parse import urlencode

from live import PASSWORD, LiveApp, Probe

THREADS = 64
PROBE_P95 = 2.0  # seconds: loose, for a shared 2-core CI machine (each check costs a password hash)
ATTACKER = "127.0.0.1"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def password_checks(live: LiveApp) -> int:
    return live.scalar("SELECT count(*) FROM audit_events WHERE action = 'sign_in'")


def page_form(live: LiveApp, source: str = ATTACKER) -> tuple[str, str]:
    """A sign-in form's CSRF token and the cookie it belongs to."""
    status, headers, body = live.request("GET", "/login", source=source)
    assert status == 200
    return _CSRF.search(body.decode())[1], headers["set-cookie"].split(";", 1)[0]


def page_login(live: LiveApp, form: tuple[str, str], username: str, password: str, source: str = ATTACKER):
    token, cookie = form
    body = urlencode({"csrf_token": token, "username": username, "password": password}).encode()
    return live.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                 "Cookie": cookie}, source=source)


def api_login(live: LiveApp, username: str, password: str, source: str = ATTACKER):
    body = json.dumps({"username": username, "password": password}).encode()
    return live.request("POST", "/tscharts/v1/login/", body, {"Content-Type": "application/json"}, source=source)


def test_64_simultaneous_guesses_check_at_most_login_attempts_passwords(tmp_path):
    with LiveApp(tmp_path, workers=2) as live:
        username = live.seed.patient_username
        forms = [page_form(live) for _ in range(THREADS // 2)]
        before = password_checks(live)
        answers: list[tuple[int, dict]] = []
        barrier = threading.Barrier(THREADS)

        def guess(n: int) -> None:
            barrier.wait(20)
            if n % 2:
                status, headers, _ = page_login(live, forms[n // 2], username, f"wrong guess {n}")
            else:
                status, headers, _ = api_login(live, username, f"wrong guess {n}")
            answers.append((status, headers))

        with Probe(live) as probe:
            threads = [threading.Thread(target=guess, args=(n,)) for n in range(THREADS)]
            try:
                for thread in threads:
                    thread.start()
            finally:
                for thread in threads:
                    thread.join(60)
        checks = password_checks(live) - before
        statuses = sorted(status for status, _ in answers)
        checked = [s for s in statuses if s in (401, 403)]
        refused = [headers for status, headers in answers if status == 429]
        assert len(answers) == THREADS and set(statuses) <= {401, 403, 429}, statuses
        assert checks == len(checked) and 1 <= checks <= 10, (checks, statuses)  # LOGIN_ATTEMPTS
        assert len(refused) == THREADS - checks
        assert all(1 <= int(h["retry-after"]) <= 300 for h in refused)  # within LOGIN_WINDOW
        assert probe.failures == [] and probe.p95() < PROBE_P95, probe.summary()
        # The patient, from their own address, is not locked out by guesses from another one.
        assert page_login(live, page_form(live, "127.0.0.3"), username, PASSWORD, "127.0.0.3")[0] == 303


def test_spraying_40_usernames_from_one_address_is_refused_after_the_spraying_limit(tmp_path):
    with LiveApp(tmp_path, workers=2) as live:
        before = password_checks(live)
        statuses = [api_login(live, f"user{n}@clinic", "Spring2026!")[0] for n in range(40)]
        assert statuses == [403] * 20 + [429] * 20  # LOGIN_SPRAY_USERNAMES
        assert password_checks(live) - before == 20
        # Another address is not refused, and the real patient still signs in.
        assert api_login(live, live.seed.patient_username, PASSWORD, source="127.0.0.4")[0] == 200
