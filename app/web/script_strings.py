"""The strings static/chartbox.js shows, translated for the page (base.html puts them in a JSON
script tag; the script falls back to the English, which is also each one's key)."""
from __future__ import annotations

from flask_babel import get_locale, gettext

from app.i18n import DEFAULT_LOCALE, N_

#: Every string chartbox.js passes to its t(); tests/test_i18n.py checks the script uses no other.
SCRIPT_STRINGS = (
    N_("%(done)s of %(total)s"),
    N_("%(num)s bytes"),
    N_("%(num)s not uploaded"),
    N_("%(num)s to go"),
    N_("%(num)s uploaded"),
    N_("Cancel %(name)s"),
    N_("Cancel"),
    N_("Cancelled"),
    N_("Delete “%(name)s”?"),
    N_("Dismiss %(name)s"),
    N_("Dismiss"),
    N_("Download it"),
    N_("Files without an ending are not accepted here."),
    N_("Fit"),
    N_("It will disappear from this chart. You can undo it, or restore it from Recently deleted."),
    N_("Loading…"),
    N_("Not uploaded: %(reason)s"),
    N_("Not uploaded: the connection was lost. Check your network and try again."),
    N_("Open the whole PDF"),
    N_("Open them as a page"),
    N_("Page %(page)s of %(pages)s of %(name)s"),
    N_("Page %(page)s of %(pages)s"),
    N_("Retry %(name)s"),
    N_("Retry"),
    N_("Showing the first %(num)s rows; download the file for all of them."),
    N_("Showing the first %(shown)s of %(pages)s pages."),
    N_("Starting…"),
    N_("The file could not be shown here; download it instead."),
    N_("The table"),
    N_("The details could not be loaded here."),
    N_("The upload did not go through (error %(status)s). Try again."),
    N_("This file is too long to show here (%(size)s)."),
    N_("Upload finished."),
    N_("Uploaded"),
    N_("Uploading %(name)s"),
    N_("Waiting…"),
    N_("Your session has ended. Reload the page and sign in again."),
    N_("Zoom"),
    N_("about %(num)s min left"),
    N_("about %(num)s s left"),
    N_("the file is %(size)s; the limit is %(limit)s."),
    N_("“.%(ext)s” files are not accepted here."),
)


def script_catalogue() -> dict[str, str]:
    """{English: translation} for this request's language; empty in English (the script's own)."""
    locale = get_locale()
    if locale is None or locale.language == DEFAULT_LOCALE:
        return {}
    return {english: gettext(english) for english in SCRIPT_STRINGS}
