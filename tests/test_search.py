"""Search: the text extracted at upload, the index on SQLite and PostgreSQL, and list_files'
ListQuery (words, filters, order) within the actor's scope. Real uploads through the file
service; runs on either engine (CHARTBOX_TEST_DATABASE)."""
from __future__ import annotations

import io
import logging
import time
import zipfile
from datetime import timedelta

import pytest
from builders import docx, small_png, text_pdf, xlsx
from conftest import sample
from sqlalchemy import func, select, update

from app.extensions import db
from app.models import Action, AuditEvent, Category, Channel, FileText, StoredFile, Visit
from app.models.base import utcnow
from app.services import files, search_index, text_extract, validation
from app.services.audit import Origin
from app.services.files import Kind, ListQuery, Sort, Source, Target

CLI = Origin(Channel.CLI)
LIMITS = validation.Limits(image_max_pixels=50_000_000, pdf_timeout=10.0, pdf_memory=512 * 1024 * 1024,
                           zip_max_uncompressed=10 * 1024 * 1024)
LAB = text_pdf([["Chartbox lab report", "Hemoglobin 13.9 g/dL"], ["Ferritin within range", "Signed: Dr Okonkwo"]])


def _upload(actor, data: bytes, name: str, patient=None, category=Category.USER_DOCUMENT, visit=None):
    target = Target.chart(visit.patient, visit) if visit else Target.chart(patient or actor)
    return files.upload(actor, CLI, io.BytesIO(data), name, category, target)


def _text(row) -> str | None:
    found = db.session.get(FileText, row.id)
    return found.body if found else None


def _found(actor, q: str = "", patient=None, visit=None, **query) -> list[str]:
    chart = Target.chart(patient or actor, visit)
    listing = files.list_files(actor, chart, None if visit else Category.USER_DOCUMENT, include_shared=not visit,
                               per_page=100, query=ListQuery(q=q, **query))
    assert listing.total == len(listing.items)
    return [row.name for row in listing.items]


def _extract(tmp_path, data: bytes, media_type: str, max_chars: int = 200_000) -> str | None:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return text_extract.extract(str(path), media_type, LIMITS, LIMITS.budget(), max_chars)


# -- extraction, per type --------------------------------------------------------------------------

def test_a_pdfs_text_comes_from_every_page(tmp_path):
    text = _extract(tmp_path, LAB, validation.PDF)
    assert "Hemoglobin 13.9" in text and "Ferritin within range" in text and "Okonkwo" in text


def test_text_and_csv_are_read_as_utf8(tmp_path):
    assert "Zoë Ångström" in _extract(tmp_path, sample("notes.txt"), validation.TEXT)
    assert "heart_rate_bpm" in _extract(tmp_path, sample("vitals.csv"), validation.CSV)
    assert _extract(tmp_path, "\ufeffbom first".encode(), validation.TEXT) == "bom first"


def test_word_paragraphs_and_excel_strings(tmp_path):
    text = _extract(tmp_path, docx(["Referral to cardiology", "Reason: palpitations & dizziness"]), validation.DOCX)
    assert text == "Referral to cardiology\nReason: palpitations & dizziness"
    text = _extract(tmp_path, xlsx(["Claim", "Amount"], inline=("CLM-0042", "Deductible")), validation.XLSX)
    assert "Claim" in text and "Amount" in text and "CLM-0042" in text and "Deductible" in text
    assert "Jane Testcase" in _extract(tmp_path, sample("referral.docx"), validation.DOCX)
    assert "CLM-0001" in _extract(tmp_path, sample("claims.xlsx"), validation.XLSX)


def test_images_have_no_text(tmp_path):
    assert _extract(tmp_path, small_png(), validation.PNG) is None


def test_the_text_kept_is_capped(tmp_path):
    text = _extract(tmp_path, ("word " * 100_000).encode(), validation.TEXT, max_chars=1000)
    assert 990 <= len(text) <= 1000
    assert _extract(tmp_path, b"anything", validation.TEXT, max_chars=0) is None


def test_controls_and_nul_never_reach_the_index():
    assert text_extract.tidy("a\x00b\x07c  \t d\n\n\n\ne", 100) == "a b c d\n\ne"
    assert text_extract.tidy("\x00 \x01", 100) is None


def _zip(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_an_office_part_with_entities_gives_no_text(tmp_path, caplog):
    laughs = (b'<?xml version="1.0"?><!DOCTYPE w [<!ENTITY a "hahahahaha"><!ENTITY b "&a;&a;&a;&a;">]>'
              b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
              b'<w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>')
    with caplog.at_level(logging.INFO, "app.services.text_extract"):
        assert _extract(tmp_path, _zip({"word/document.xml": laughs}), validation.DOCX) is None
    assert "DOCTYPE" in caplog.text


def test_office_parts_are_read_within_their_bound(tmp_path):
    big = (b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
           + b"x" * 200_000 + b"</w:t></w:r></w:p></w:body></w:document>")
    path = tmp_path / "big.docx"
    path.write_bytes(_zip({"word/document.xml": big}))
    text, problem = text_extract.office_text(str(path), "docx", 1_000_000, 100_000)
    assert text is None and "larger than allowed" in problem
    text, problem = text_extract.office_text(str(path), "docx", 500, 10_000_000)
    assert problem is None and text == "x" * 500  # stops once enough is read


def test_a_damaged_pdf_gives_no_text_and_says_so_at_info(tmp_path, caplog):
    with caplog.at_level(logging.INFO, "app.services.text_extract"):
        assert _extract(tmp_path, b"%PDF-1.4 nothing else", validation.PDF) is None
    assert any(r.levelno == logging.INFO and "no text kept" in r.getMessage() for r in caplog.records)


# -- at upload -------------------------------------------------------------------------------------

def test_an_upload_keeps_its_text(make_user):
    alice = make_user()
    row = _upload(alice, LAB, "lab.pdf")
    assert "Hemoglobin" in _text(row)
    assert _text(_upload(alice, small_png(), "dot.png")) is None


def slow_pdf_text(path: str, max_chars: int):
    """Stands in for text_extract.pdf_text: a PDF whose text takes for ever to read."""
    time.sleep(30)
    return "never", None


def failing_pdf_text(path: str, max_chars: int):
    raise RuntimeError("the reader broke")


class TestExtractionNeverFailsAnUpload:
    @pytest.fixture
    def config_overrides(self):
        return {"PDF_PARSE_TIMEOUT": 1.5}

    def test_a_timeout_stores_no_text(self, make_user, monkeypatch, caplog):
        monkeypatch.setattr(text_extract, "pdf_text", slow_pdf_text)
        started = time.monotonic()
        with caplog.at_level(logging.INFO, "app.services.decoders"):
            row = _upload(make_user(), LAB, "lab.pdf")
        assert time.monotonic() - started < 10
        assert row.id and row.page_count == 2 and _text(row) is None
        assert any(r.levelno == logging.INFO and "gave up" in r.getMessage() for r in caplog.records)

    def test_no_time_left_stores_no_text(self, make_user, monkeypatch):
        from app.services import decoders

        original = decoders.Budget.try_run

        def exhausted(self, fn, *args):
            self.deadline = time.monotonic() - 1  # the whole budget went on validation
            return original(self, fn, *args)

        monkeypatch.setattr(decoders.Budget, "try_run", exhausted)
        row = _upload(make_user(), LAB, "lab.pdf")
        assert row.id and _text(row) is None

    def test_an_exception_in_the_child_stores_no_text(self, make_user, monkeypatch):
        monkeypatch.setattr(text_extract, "pdf_text", failing_pdf_text)
        row = _upload(make_user(), LAB, "lab.pdf")
        assert row.id and _text(row) is None


# -- search ----------------------------------------------------------------------------------------

@pytest.fixture
def chart(make_user, make_visit):
    """Alice's chart: a lab PDF, a Word referral, a note, a photo; a visit file staff shared
    and one they did not; Bob's chart has a word Alice's lacks."""
    alice, bob, provider = make_user(full_name="Alice Moreno"), make_user(), make_user("provider")
    _upload(alice, LAB, "March results.pdf")
    _upload(provider, docx(["Referral to cardiology", "Reason: palpitations"]), "Referral.docx", patient=alice)
    _upload(alice, b"Blood pressure diary\nmorning 118/76\n", "bp diary.txt")
    _upload(alice, small_png(), "Insurance card.png")
    visit = make_visit(alice)
    shared = _upload(provider, b"Discharge summary: amoxicillin course\n", "discharge.txt",
                     category=Category.INTAKE_ATTACHMENT, visit=visit)
    files.set_visible(provider, CLI, shared.public_id, True)
    _upload(provider, b"Internal note: suspected zoster\n", "internal.txt", category=Category.INTAKE_ATTACHMENT,
            visit=visit)
    _upload(bob, text_pdf([["Bob's audiogram", "tinnitus both ears"]]), "audiogram.pdf")
    return alice, bob, provider


def test_a_word_inside_a_pdf_finds_it(chart):
    alice, _, _ = chart
    assert _found(alice, "hemoglobin") == ["March results.pdf"]
    assert _found(alice, "Okonkwo") == ["March results.pdf"]  # on page two
    assert _found(alice, "cardiology") == ["Referral.docx"]
    assert _found(alice, "amoxicillin") == ["discharge.txt"]  # shared with her
    assert _found(alice, "gastroscopy") == []


def test_the_last_word_is_a_prefix_and_words_go_in_any_order(chart):
    alice, _, _ = chart
    assert _found(alice, "hemo") == ["March results.pdf"]
    assert _found(alice, "13 hemoglobin") == ["March results.pdf"]
    assert _found(alice, "within ferritin") == ["March results.pdf"]
    assert _found(alice, "ferritin cardiology") == []  # all words, in one file


def test_names_match_as_case_insensitive_substrings_or_the_text(chart):
    alice, _, _ = chart
    assert _found(alice, "MARCH") == ["March results.pdf"]
    assert _found(alice, "surance") == ["Insurance card.png"]  # an image: by its name only
    assert _found(alice, "diary") == ["bp diary.txt"]
    # "re": in two names, and the first letters of "report" and "Reason" inside them
    assert sorted(_found(alice, "re")) == ["March results.pdf", "Referral.docx"]
    assert sorted(_found(alice, "ar")) == ["Insurance card.png", "March results.pdf", "bp diary.txt", "discharge.txt"]


@pytest.mark.parametrize("hostile", [
    '"', '""', "*", "OR", "AND", "NOT", "NEAR(", "NEAR(a b", "hemo*", '"hemoglobin', "hemoglobin OR zzz",
    "'", ":*", "&", "|", "!", "<->", "(", ")", "-", "^", "\x00", "hemo\x00globin", "col:hemo", "{body}: x",
    "%", "_", "\\", "a" * 10_000, "hemoglobin " * 2000, "🙂", "ñandú", "\u202e", "  ",
])
def test_hostile_queries_never_fail(chart, hostile):
    alice, _, _ = chart
    _found(alice, hostile)  # answers, whatever it finds


def test_operators_are_words_not_syntax(chart):
    alice, _, _ = chart
    assert _found(alice, '"hemoglobin"') == ["March results.pdf"]
    assert _found(alice, "hemoglobin OR cardiology") == []  # "or" is a word that none holds
    assert _found(alice, "NEAR(hemoglobin") == []
    assert _found(alice, "hemoglobin*") == ["March results.pdf"]
    assert _found(alice, "%") == _found(alice)  # no word: no narrowing, not a LIKE wildcard


def test_a_patient_never_finds_another_patients_or_a_hidden_file(chart):
    alice, bob, provider = chart
    assert _found(alice, "tinnitus") == [] and _found(alice, "audiogram") == []
    assert _found(alice, "zoster") == [] and _found(alice, "internal") == []
    assert files.list_files(alice, query=ListQuery(q="zoster")).total == 0  # not even a count
    assert _found(bob, "hemoglobin") == []
    visit = db.session.scalar(select(Visit).where(Visit.patient_id == alice.id))
    assert _found(provider, "zoster", patient=alice, visit=visit) == ["internal.txt"]  # staff see it
    assert _found(provider, "tinnitus", patient=alice) == []


def test_filters_narrow_within_the_search(chart):
    alice, _, provider = chart
    assert _found(alice, kind=Kind.PDF) == ["March results.pdf"]
    assert _found(alice, kind=Kind.IMAGE) == ["Insurance card.png"]
    assert _found(alice, kind=Kind.DOCUMENT) == ["Referral.docx"]
    assert sorted(_found(alice, kind=Kind.TEXT)) == ["bp diary.txt", "discharge.txt"]
    assert _found(alice, category=Category.INTAKE_ATTACHMENT) == ["discharge.txt"]
    assert sorted(_found(alice, source=Source.TEAM)) == ["Referral.docx", "discharge.txt"]
    assert len(_found(alice, source=Source.ME)) == 3
    assert _found(alice, "re", kind=Kind.PDF) == ["March results.pdf"]
    assert sorted(_found(provider, patient=alice, source=Source.ME)) == ["Referral.docx", "discharge.txt"]


def test_dates_include_both_days(chart):
    alice, _, _ = chart
    rows = {r.name: r for r in db.session.scalars(select(StoredFile).where(StoredFile.patient_id == alice.id))}
    today = utcnow()
    db.session.execute(update(StoredFile).where(StoredFile.id == rows["March results.pdf"].id)
                       .values(created_at=today - timedelta(days=40)))
    db.session.commit()
    day = (today - timedelta(days=40)).date()
    assert _found(alice, since=day, until=day) == ["March results.pdf"]
    assert "March results.pdf" not in _found(alice, since=day + timedelta(days=1))
    assert _found(alice, until=day - timedelta(days=1)) == []
    assert len(_found(alice, since=today.date(), until=today.date())) == 4


def test_every_order_is_deterministic(make_user):
    alice = make_user()
    for name, size in (("b.txt", 3), ("A.txt", 2), ("c.txt", 2), ("a.txt", 1)):
        _upload(alice, b"x" * size, name)
    same = utcnow()
    db.session.execute(update(StoredFile).values(created_at=same))  # one moment: the id decides
    db.session.commit()
    assert _found(alice, sort=Sort.NEWEST) == ["a.txt", "c.txt", "A.txt", "b.txt"]
    assert _found(alice, sort=Sort.OLDEST) == ["b.txt", "A.txt", "c.txt", "a.txt"]
    assert _found(alice, sort=Sort.NAME) == ["A.txt", "a.txt", "b.txt", "c.txt"]
    assert _found(alice, sort=Sort.NAME_DESC) == ["c.txt", "b.txt", "a.txt", "A.txt"]
    assert _found(alice, sort=Sort.SIZE) == ["a.txt", "A.txt", "c.txt", "b.txt"]
    assert _found(alice, sort=Sort.SIZE_DESC) == ["b.txt", "c.txt", "A.txt", "a.txt"]
    pages = [files.list_files(alice, page=n, per_page=1, query=ListQuery(sort=Sort.SIZE)).items[0].name
             for n in (1, 2, 3, 4)]
    assert pages == ["a.txt", "A.txt", "c.txt", "b.txt"]


def test_the_listing_audit_event_records_the_query(chart):
    alice, _, _ = chart
    files.list_files(alice, origin=CLI, query=ListQuery(q='hemo "', kind=Kind.PDF, sort=Sort.NAME))
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == Action.LIST.value)
                               .order_by(AuditEvent.id.desc())).first()
    assert event.detail["query"] == {"q": "hemo", "kind": "pdf", "sort": "name"}
    files.list_files(alice, origin=CLI)
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == Action.LIST.value)
                               .order_by(AuditEvent.id.desc())).first()
    assert "query" not in event.detail


# -- the index follows the files -------------------------------------------------------------------

def test_deleted_files_leave_the_results_and_come_back_when_restored(chart):
    alice, _, _ = chart
    row = db.session.scalar(select(StoredFile).where(StoredFile.name == "March results.pdf"))
    files.delete(alice, CLI, row.public_id)
    assert _found(alice, "hemoglobin") == []
    files.restore(CLI, row.public_id, actor=alice)
    assert _found(alice, "hemoglobin") == ["March results.pdf"]


def test_a_purge_removes_the_text_from_the_index(chart, runner):
    alice, _, _ = chart
    row = db.session.scalar(select(StoredFile).where(StoredFile.name == "March results.pdf"))
    files.delete(alice, CLI, row.public_id)
    result = runner.invoke(args=["files", "purge", "--older-than", "0", "--yes"])
    assert result.exit_code == 0, result.output
    assert _text(row) is None
    # The index itself forgot it too: the FTS table on SQLite (its own rows), the query elsewhere.
    db.session.execute(update(StoredFile).where(StoredFile.id == row.id).values(deleted_at=None))
    assert _found(alice, "hemoglobin") == []


def test_reindex_gives_existing_files_their_text(chart, runner):
    alice, _, provider = chart
    before = db.session.scalar(select(func.count()).select_from(FileText))
    search_index.remove_texts(list(db.session.scalars(select(StoredFile.id))))
    db.session.commit()
    assert _found(alice, "hemoglobin") == []
    result = runner.invoke(args=["files", "reindex"])
    assert result.exit_code == 0, result.output
    assert f"{before} file(s) indexed, 0 without text" in result.output
    assert _found(alice, "hemoglobin") == ["March results.pdf"]
    visit = db.session.scalar(select(Visit).where(Visit.patient_id == alice.id))
    assert _found(provider, "zoster", patient=alice, visit=visit) == ["internal.txt"]
    again = runner.invoke(args=["files", "reindex"])
    assert "0 file(s) indexed" in again.output  # nothing left to do


def test_words_are_letters_and_digits():
    assert search_index.words('Hémo"globin OR  NEAR( 13.9 x_y \x00z') == ("hémo", "globin", "or", "near", "13", "9",
                                                                         "x", "y", "z")[:8]
    assert search_index.words("a " * 100) == ("a",)
    assert len(search_index.words(" ".join(f"w{i}" for i in range(50)))) == search_index.MAX_WORDS
    assert search_index.fts5_query(("a", "b")) == '"a" "b"*'
    assert search_index.tsquery(("a", "b")) == "'a' & 'b':*"
