"""Server-rendered pages for patients and providers."""
from flask import Flask


def register_web(app: Flask) -> None:
    from app.extensions import login_manager
    from app.services.accounts import get_user_by_id
    from app.web import home

    @login_manager.user_loader
    def load_user(user_id: str):
        return get_user_by_id(int(user_id)) if user_id.isdigit() else None

    app.register_blueprint(home.bp)
