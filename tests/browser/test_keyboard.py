"""Without a mouse, in Chromium: upload, open, rename, delete, undo and restore from the
keyboard alone, with the focus ring visible (>= 3:1 against what is around it) and focus
landing on the row acted on; the "⋯" menu's keys; the details drawer's focus trap. Also: tap
targets on a phone, every upload panel of a page, and the row actions with scripts off.

Reuses the live server, browser and page fixtures (and shot()'s accessibility check) of
test_pages_in_chromium.py; this module gets a server of its own.
"""
from __future__ import annotations

import re

import a11y
import pytest
from conftest import DATA
from test_pages_in_chromium import (  # noqa: F401  (fixtures are found by name)
    PASSWORD,
    TIMEOUT,
    browser,
    live,
    page,
    row,
    shot,
    wait_until,
)

from app.extensions import db
from app.models import Category, User
from app.services import accounts, files
from app.services.audit import Origin

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}

# The contrast of the focused element's ring (outline or box-shadow colours) against the
# background it is drawn on; for a visually hidden file input, the ring of its label.
RING = """() => {
  const rgb = s => { const m = s && s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(',').map(parseFloat); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
  const behind = node => { for (let n = node; n; n = n.parentElement) {
    const c = rgb(getComputedStyle(n).backgroundColor); if (c && c.a > 0.5) return c; }
    return {r: 255, g: 255, b: 255, a: 1}; };
  let el = document.activeElement;
  if (el.matches('.dz-input')) el = el.previousElementSibling;
  const st = getComputedStyle(el), colours = [];
  if (st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) > 0) colours.push(rgb(st.outlineColor));
  if (st.boxShadow && st.boxShadow !== 'none') for (const m of st.boxShadow.matchAll(/rgba?\\([^)]+\\)/g)) colours.push(rgb(m[0]));
  const around = behind(el.parentElement);
  return Math.max(0, ...colours.filter(Boolean).map(c => ratio(c, around)));
}"""


def ring(page) -> float:
    return page.evaluate(RING)


def assert_focus_visible(page) -> None:
    contrast = ring(page)
    assert contrast >= 3, f"focus ring {contrast:.2f}:1 on {page.evaluate('document.activeElement.outerHTML.slice(0, 120)')}"


def focused_in_row(page, name: str) -> bool:
    """Focus is on the row of the file called `name`, or inside it."""
    return page.evaluate("""(name) => { const f = document.activeElement.closest('li.file');
        return !!f && f.querySelector('.file-name').textContent.trim() === name; }""", name)


def tab_to(page, predicate: str, most: int = 80, back: bool = False) -> None:
    """Press Tab (Shift+Tab) until the JS `predicate` over `el` (the focused element) holds."""
    check = f"(() => {{ const el = document.activeElement; return !!el && ({predicate}); }})()"
    for _ in range(most):
        if page.evaluate(check):
            return
        page.keyboard.press("Shift+Tab" if back else "Tab")
    raise AssertionError(f"Tab never reached: {predicate}")


def menu_button_of(name: str) -> str:
    return f"el.matches('.row-menu-button') && el.getAttribute('aria-label') === 'More actions for {name}'"


def focused_text(page) -> str:
    return page.evaluate("document.activeElement.textContent.trim()")


def keyboard_sign_in(page, live, username: str) -> None:
    page.goto(f"{live.url}/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/(documents|patients)$"))


def choose_from_menu(page, name: str, item: str) -> None:
    """Focus the row's ⋯ button with Tab, open it with Enter and walk to `item` with the arrows."""
    tab_to(page, menu_button_of(name))
    page.keyboard.press("Enter")
    for _ in range(8):
        if focused_text(page) == item:
            break
        page.keyboard.press("ArrowDown")
    assert focused_text(page) == item
    page.keyboard.press("Enter")


def seed(live, username: str, *names: str) -> None:
    with live.app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == username))
        for name in names:
            with open(DATA / name, "rb") as fh:
                files.upload(user, Origin.cli(), fh, name, Category.USER_DOCUMENT, files.Target.chart(user))


def test_upload_open_rename_delete_undo_and_restore_by_keyboard(page, live):
    keyboard_sign_in(page, live, "bob")

    # Upload: Tab to the chooser (its label shows the ring), open it from the keyboard.
    tab_to(page, "el.matches('#main .dz-input:not(.dz-camera-input)')")
    assert_focus_visible(page)
    with page.expect_file_chooser() as chosen:
        page.keyboard.press("Space")
    chosen.value.set_files([str(DATA / "letter.pdf"), str(DATA / "photo.jpg")])
    row(page, "letter.pdf").wait_for()
    row(page, "photo.jpg").wait_for()

    # Open: Enter on the name opens the viewer; Tab stays in it; Escape gives focus back to the row.
    tab_to(page, "el.matches('.file-name') && el.textContent.trim() === 'letter.pdf'")
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    for _ in range(6):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    assert_focus_visible(page)
    page.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    wait_until(page, "!!document.activeElement.closest('li.file')")
    assert focused_in_row(page, "letter.pdf")

    # Rename from the ⋯ menu: the field takes focus, Enter saves, focus comes back to the row.
    choose_from_menu(page, "photo.jpg", "Rename")
    wait_until(page, "document.activeElement && document.activeElement.name === 'name'")
    assert_focus_visible(page)
    page.keyboard.press("Control+A")
    page.keyboard.type("holiday")
    page.keyboard.press("Enter")
    page.get_by_text("Renamed to “holiday.jpg”.").wait_for()
    wait_until(page, "document.activeElement.matches('li.file')")
    assert focused_in_row(page, "holiday.jpg")
    assert_focus_visible(page)

    # Delete from the menu (ArrowUp opens it at its last item): Escape in the dialog gives
    # focus back to the row; the second time Delete goes through and Undo takes focus.
    tab_to(page, menu_button_of("holiday.jpg"))
    page.keyboard.press("ArrowUp")
    assert focused_text(page) == "Delete"
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm")
    dialog.wait_for(state="visible")
    assert focused_text(page) == "Cancel"
    assert_focus_visible(page)
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    wait_until(page, f"(el => {menu_button_of('holiday.jpg')})(document.activeElement)")  # after the close event
    assert_focus_visible(page)
    page.keyboard.press("ArrowUp")
    page.keyboard.press(" ")  # Space acts on a menu item that is a link, too
    dialog.wait_for(state="visible")
    page.keyboard.press("Tab")
    assert focused_text(page) == "Delete"
    page.keyboard.press("Enter")
    page.get_by_text("Deleted “holiday.jpg”.").wait_for()
    wait_until(page, "document.activeElement.textContent.trim() === 'Undo'")  # autofocus comes at a render
    assert row(page, "holiday.jpg").count() == 0
    assert_focus_visible(page)

    # Undo: the file is back and focus is on its row.
    page.keyboard.press("Enter")
    page.get_by_text("Restored “holiday.jpg”.").wait_for()
    wait_until(page, "document.activeElement.matches('li.file')")
    assert focused_in_row(page, "holiday.jpg")
    assert_focus_visible(page)

    # Restore from Recently deleted: the message saying it is back takes focus.
    choose_from_menu(page, "letter.pdf", "Delete")
    dialog.wait_for(state="visible")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.get_by_text("Deleted “letter.pdf”.").wait_for()
    tab_to(page, "el.matches('.tabs a') && el.textContent.trim() === 'Recently deleted'")
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/documents/trash$"))
    tab_to(page, "el.getAttribute('aria-label') === 'Restore letter.pdf'")
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    page.get_by_text("Restored “letter.pdf”.").wait_for()
    wait_until(page, "document.activeElement.matches('.flash')")
    assert "Restored “letter.pdf”." in focused_text(page)
    assert_focus_visible(page)
    page.goto(f"{live.url}/documents")
    assert row(page, "letter.pdf").count() == 1


def test_the_row_menu_by_keyboard(page, live):
    seed(live, "bob", "notes.txt", "vitals.csv")
    keyboard_sign_in(page, live, "bob")
    notes = row(page, "notes.txt")
    button = notes.locator(".row-menu-button")
    assert button.get_attribute("aria-haspopup") == "menu" and button.get_attribute("aria-expanded") == "false"
    assert notes.get_by_role("menu").count() == 0  # closed: no menu to find
    tab_to(page, menu_button_of("notes.txt"))
    assert_focus_visible(page)

    page.keyboard.press("Space")  # opens at the first item
    assert button.get_attribute("aria-expanded") == "true"
    items = [i.inner_text() for i in notes.get_by_role("menuitem").all()]
    assert items == ["Details and history", "Rename", "Delete"]
    assert focused_text(page) == items[0]
    assert_focus_visible(page)
    shot(page, "22-row-menu-open", full_page=False)  # axe over the open menu, too
    assert focused_text(page) == items[0]
    page.keyboard.press("ArrowUp")  # the arrows wrap round
    assert focused_text(page) == "Delete"
    page.keyboard.press("ArrowDown")
    assert focused_text(page) == "Details and history"
    page.keyboard.press("End")
    assert focused_text(page) == "Delete"
    page.keyboard.press("Home")
    assert focused_text(page) == "Details and history"
    page.keyboard.press("Escape")  # closes, focus back on its button
    assert button.get_attribute("aria-expanded") == "false" and not notes.get_by_role("menuitem").first.is_visible()
    assert page.evaluate(f"(el => {menu_button_of('notes.txt')})(document.activeElement)")

    page.keyboard.press("ArrowDown")  # opens too
    assert focused_text(page) == "Details and history"
    page.keyboard.press("Tab")  # leaves the menu, closed, for what follows its button
    assert button.get_attribute("aria-expanded") == "false"
    assert not page.evaluate("!!document.activeElement.closest('.row-menu-list')")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(f"(el => {menu_button_of('notes.txt')})(document.activeElement)")

    page.keyboard.press("Enter")  # Enter opens; one menu open at a time; a click elsewhere closes
    vitals = row(page, "vitals.csv")
    vitals.locator(".row-menu-button").click()
    assert vitals.locator(".row-menu-button").get_attribute("aria-expanded") == "true"
    assert button.get_attribute("aria-expanded") == "false"
    page.locator("h1").click()
    assert page.locator("details.row-menu[open]").count() == 0

    # Rename opened from the menu closes on Escape, focus back on the row's button.
    choose_from_menu(page, "notes.txt", "Rename")
    wait_until(page, "document.activeElement && document.activeElement.name === 'name'")
    page.keyboard.press("Escape")
    assert page.evaluate(f"(el => {menu_button_of('notes.txt')})(document.activeElement)")
    assert page.locator("details.rename[open]").count() == 0


def test_the_details_drawer_traps_focus_and_gives_it_back(page, live):
    seed(live, "bob", "lab-results.pdf")
    keyboard_sign_in(page, live, "bob")
    choose_from_menu(page, "lab-results.pdf", "Details and history")
    drawer = page.locator("#drawer")
    drawer.wait_for(state="visible")
    drawer.locator("#details-title").wait_for()
    assert drawer.get_attribute("aria-labelledby") == "details-title"
    text = drawer.inner_text()
    for said in ("lab-results.pdf", "PDF document", "Pages", "Uploaded by", "You", "Version", "1 (as uploaded)",
                 "Who opened it", "uploaded"):
        assert said in text, said
    assert page.url.endswith("/documents")  # a drawer over the list, not another page
    for key in ("Tab", "Shift+Tab"):
        for _ in range(8):
            page.keyboard.press(key)
            assert page.evaluate("document.getElementById('drawer').contains(document.activeElement)")
            assert_focus_visible(page)
    shot(page, "20-details-drawer", full_page=False)
    page.set_viewport_size(PHONE)  # a full-width sheet on a phone
    assert drawer.bounding_box()["width"] == PHONE["width"]
    page.keyboard.press("Escape")
    drawer.wait_for(state="hidden")
    wait_until(page, f"(el => {menu_button_of('lab-results.pdf')})(document.activeElement)")
    assert_focus_visible(page)


SMALL = """() => [...document.querySelectorAll('a[href], button, summary, label.btn, input[type=submit]')]
  .filter(el => el.offsetParent !== null && getComputedStyle(el).visibility !== 'hidden' && !el.closest('dialog:not([open])'))
  .filter(el => !el.matches('.skip-link'))
  .map(el => [el, el.getBoundingClientRect()])
  .filter(([el, r]) => r.width > 0 && (r.width < 44 || r.height < 44))
  .map(([el, r]) => `${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') || el.textContent).trim().slice(0, 40)}" ${Math.round(r.width)}x${Math.round(r.height)}`)"""


def test_tap_targets_on_a_phone(page, live):
    seed(live, "bob", "photo.jpg")
    page.set_viewport_size(PHONE)
    found: list[str] = []

    def look(label: str) -> None:
        found.extend(f"{label}: {what}" for what in page.evaluate(SMALL))
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            found.append(f"{label}: the page is {width} px wide")
        menu = page.locator(".row-menu-button").first
        if menu.count() and menu.is_visible():  # and with a row's menu open
            menu.click()
            found.extend(f"{label} (menu open): {what}" for what in page.evaluate(SMALL))
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > PHONE["width"]:
                found.append(f"{label} (menu open): the page is {width} px wide")
            page.keyboard.press("Escape")

    keyboard_sign_in(page, live, "bob")
    for path in ("/documents", "/documents/visits", "/documents/trash"):
        page.goto(live.url + path)
        look(path)
    page.goto(live.url + "/documents")
    page.locator(".file-name[data-viewer]").first.click()  # the viewer's bar, too, fits and is tappable
    page.locator("#viewer").wait_for(state="visible")
    found.extend(f"viewer: {what}" for what in page.evaluate(SMALL))
    found.extend(f"viewer: {what} goes past the screen's edge" for what in page.evaluate(
        "[...document.querySelectorAll('#viewer .btn')].map(b => [b, b.getBoundingClientRect()])"
        ".filter(([b, r]) => r.width && (r.left < 0 || r.right > 390)).map(([b]) => b)"
        ".map(b => b.textContent.trim())"))
    page.keyboard.press("Escape")
    page.goto(f"{live.url}/login")
    page.context.clear_cookies()
    keyboard_sign_in(page, live, "dr.rivera")
    chart = f"/patients/{live.ids['alice']}"
    for path in ("/patients", chart, chart + "/visits", chart + "/consents", chart + "/trash"):
        page.goto(live.url + path)
        look(path)
    page.goto(f"{live.url}{chart}/visits")
    page.locator(".row-menu-button").first.click()  # staff's menu (a form among its items) passes axe
    found.extend(f"{chart}/visits (menu open): {v}" for v in a11y.violations(page))
    assert not found, "too small to tap, or too wide:\n" + "\n".join(found)


def test_every_upload_panel_takes_files_and_phones_can_take_a_photo(page, live):
    with live.app.app_context():
        alice = db.session.get(User, live.ids["alice"])
        accounts.create_visit(alice, "v-2", "Follow-up")
    keyboard_sign_in(page, live, "dr.rivera")
    page.goto(f"{live.url}/patients/{live.ids['alice']}/visits")
    panels = page.locator("form.js-upload")
    assert panels.count() >= 2
    assert not panels.first.locator(".dz-camera").is_visible()  # a desktop: no camera button
    page.set_viewport_size(PHONE)
    second = panels.nth(1)
    assert second.get_by_text("Take photo").is_visible()
    camera = second.locator("input.dz-camera-input")
    assert camera.get_attribute("capture") == "environment" and camera.get_attribute("accept") == "image/*,.heic,.heif"
    region = second.locator("xpath=ancestor::section[1]").locator("[data-region].file-region")
    camera.set_input_files(str(DATA / "photo.jpg"))
    region.locator("li.file", has=page.locator(".file-name", has_text=re.compile("^photo.jpg$"))).wait_for()
    region_id = region.get_attribute("id")
    summary = "[...document.querySelectorAll('.upload-summary')].some(s => s.textContent === '1 uploaded' && !s.hidden)"
    wait_until(page, summary)
    second.locator("input.dz-input:not(.dz-camera-input)").set_input_files(str(DATA / "notes.txt"))
    page.locator(f"#{region_id} li.file", has=page.locator(".file-name", has_text=re.compile("^notes.txt$"))).wait_for()
    wait_until(page, "document.querySelectorAll('.upload-item').length === 0")
    wait_until(page, summary)


def test_the_row_actions_without_javascript(browser, live):
    seed(live, "bob", "xray.png")
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1024, "height": 800})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    try:
        keyboard_sign_in(page, live, "bob")
        scan = row(page, "xray.png")
        assert scan.get_by_role("link", name="Download xray.png").is_visible()
        scan.get_by_text("⋯").click()  # a plain <details>: it opens without a script
        scan.get_by_role("link", name="Details and history").click()
        page.wait_for_url(re.compile(r"/details\?next="))
        assert page.locator("h1").inner_text() == "xray.png" and "Size in pixels" in page.locator("main").inner_text()
        shot(page, "21-details-page-no-javascript", check=False)
        page.get_by_role("link", name="← Back").click()
        page.wait_for_url(re.compile(r"/documents#file-"))
        scan = row(page, "xray.png")
        assert scan.locator("details.rename > summary").is_visible()  # Rename: its own button without a script
        scan.get_by_text("⋯").click()
        scan.get_by_role("link", name="Delete xray.png").click()
        page.wait_for_url(re.compile(r"/delete\?next="))
        assert page.locator("h1").inner_text() == "Delete “xray.png”?"
    finally:
        context.close()
