"""The pages' forms (flask-wtf: every POST carries the session's CSRF token)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(_l("Enter your username.")), Length(max=150)],
                           render_kw={"autocomplete": "username", "autocapitalize": "none",
                                      "spellcheck": "false", "autofocus": True})
    password = PasswordField(_l("Password"), validators=[DataRequired(_l("Enter your password.")), Length(max=1024)],
                             render_kw={"autocomplete": "current-password"})
    next = HiddenField()


class UploadForm(FlaskForm):
    """One or several files for a chart; the target travels in hidden fields."""

    files = MultipleFileField(_l("Choose files"))
    category = HiddenField()
    target_type = HiddenField()
    target_id = HiddenField()
    next = HiddenField()


class RenameForm(FlaskForm):
    name = StringField(_l("New name"), validators=[DataRequired(_l("Enter a name.")), Length(max=255)])
    next = HiddenField()


class ConfirmForm(FlaskForm):
    """A bare POST (delete, sign out): only the CSRF token and where to go afterwards."""

    next = HiddenField()


class DeleteForm(FlaskForm):
    """Delete: the CSRF token, where to go afterwards and, from staff, why."""

    reason = StringField(_l("Why is it being removed?"), validators=[Optional(), Length(max=500)])
    next = HiddenField()


class VisibilityForm(FlaskForm):
    visible = BooleanField(_l("Visible to the patient"))
    next = HiddenField()


class VisitForm(FlaskForm):
    reason = StringField(_l("Reason for the visit"), validators=[DataRequired(_l("Say what the visit is for.")),
                                                             Length(max=200)])
    external_id = StringField(_l("External id (optional)"), validators=[Optional(), Length(max=200)])


class LanguageForm(FlaskForm):
    """The footer's language switcher (base.html offers app.i18n.LANGUAGES, each named in itself)."""

    locale = StringField(_l("Language"))  # one of app.i18n.LOCALES (the view checks)
    next = HiddenField()
