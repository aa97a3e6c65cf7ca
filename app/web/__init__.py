"""Server-rendered pages for patients and providers."""
from flask import Flask, Response, flash, redirect, session, url_for
from flask_babel import force_locale, gettext
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.i18n import N_, visitor_locale

# Pages load only their own script, styles and images (thumbnails come from the signed-link
# endpoint on the same origin), so an injected tag can neither run nor phone home.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def page_csp() -> str:
    """PAGE_CSP, plus the bucket's origin for images, frames and fetches when originals are
    sent by presigned redirects (DOWNLOADS="presigned"): the viewer's signed links lead there."""
    from app.services.delivery import presigned_origin

    origin = presigned_origin()
    if origin is None:
        return PAGE_CSP
    return (PAGE_CSP.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")
            .replace("frame-src 'self'", f"frame-src 'self' {origin}")
            .replace("connect-src 'self'", f"connect-src 'self' {origin}"))


def register_web(app: Flask) -> None:
    from app.errors import BadRequest, Unauthorized, render_page_error
    from app.extensions import login_manager
    from app.http import wants_json
    from app.services import sessions
    from app.web import auth, chart, documents, export, home, language
    from app.web.display import register_display
    from app.web.navigation import here

    @login_manager.user_loader
    def load_user(user_id: str):
        # The only way in: the server-side record named by the cookie's secret (an ended, idle,
        # expired or disabled one is refused and the cookie emptied). flask-login's own user
        # id, e.g. from a remember cookie, never signs anyone in without a live record.
        secret = session.get(auth.SESSION_KEY)
        user = sessions.resolve(secret, user_id)
        if user is None:
            for key in (auth.SESSION_KEY, *auth.LOGIN_KEYS):
                session.pop(key, None)
            if secret is not None:
                # The visitor's language: asking who is signed in would ask this very loader.
                with force_locale(visitor_locale()):
                    flash(gettext(auth.SESSION_ENDED), "info")
        return user

    # The record is the session's authority; flask-login's IP/user-agent binding would only
    # sign out patients whose phone changes network. No remember-me, request or header loaders.
    login_manager.session_protection = None
    login_manager.login_view = "auth.login"
    login_manager.login_message = N_("Please sign in to see that page.")
    login_manager.localize_callback = gettext
    login_manager.login_message_category = "info"

    @login_manager.unauthorized_handler
    def unauthorized():
        if wants_json():  # the upload script
            raise Unauthorized(gettext("Your session has ended; sign in again."))
        return redirect(url_for("auth.login", next=here()))

    @app.errorhandler(CSRFError)
    def csrf_failed(_exc: CSRFError):
        return render_page_error(BadRequest(gettext(
            "This form has expired or did not come from Chartbox. Go back, reload the page and try again."
        )))

    @app.after_request
    def page_headers(resp: Response) -> Response:
        if resp.mimetype == "text/html" and "Content-Security-Policy" not in resp.headers:
            resp.headers["Content-Security-Policy"] = page_csp()
            resp.headers.setdefault("X-Frame-Options", "DENY")
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("Referrer-Policy", "same-origin")
            if current_user.is_authenticated:  # pages carry signed links: never keep a copy
                resp.headers["Cache-Control"] = "private, no-store"
        return resp

    register_display(app)
    for module in (home, auth, documents, chart, export, language):
        app.register_blueprint(module.bp)
