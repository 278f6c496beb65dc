"""Issue 19: docstrings (reST-flavoured) rendered for pages and the CLI; one time format with its zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from app.web.formats import when
from app.web.markdown import docstring_text, render_docstring

DOC = """Open a ticket and store it in the ``tickets`` table.
    See :func:`get_ticket` to read it back
    later.

    - one <b>bold</b> claim
    - two
    """


def test_docstring_becomes_paragraphs_code_and_lists_without_raw_html() -> None:
    html = str(render_docstring(DOC))
    assert "<code>tickets</code>" in html and "<code>get_ticket</code>" in html and "``" not in html
    assert "<ul>\n<li>one &lt;b&gt;bold&lt;/b&gt; claim</li>" in html  # an author's HTML is shown, never run
    assert html.count("<p>") == 1


def test_docstring_text_for_a_terminal() -> None:
    text = docstring_text(DOC)
    assert (
        text.split("\n\n")[0]
        == "Open a ticket and store it in the tickets table. See get_ticket to read it back later."
    )
    assert text.endswith("- one <b>bold</b> claim\n- two")
    assert docstring_text(DOC, width=20) == "Open a ticket and s…"
    assert docstring_text(None) == ""


def test_times_always_carry_their_zone() -> None:
    assert when("2026-12-06T18:20:43.123456") == "2026-12-06 18:20:43 UTC"
    assert when("2026-12-06T18:20:43+00:00") == "2026-12-06 18:20:43 UTC"
    assert when(datetime(2026, 12, 6, 20, 20, 43, tzinfo=timezone(timedelta(hours=2)))) == "2026-12-06 18:20:43 UTC"
    assert when(datetime(2026, 12, 6, 18, 20, 43, tzinfo=UTC)) == "2026-12-06 18:20:43 UTC"
    assert when(None) == "" and when("not a time") == "not a time"
