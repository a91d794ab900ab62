"""``_core.text``: the bounded, one-line text that error messages and logs show of a payload."""

from __future__ import annotations

from pieces_os_client._core.text import one_line, preview


def test_one_line_collapses_every_run_of_whitespace() -> None:
    assert one_line("  a\r\n\tb \n\n c  ") == "a b c"


def test_one_line_keeps_text_that_fits_and_cuts_what_does_not() -> None:
    assert one_line("x" * 10, 10) == "x" * 10
    cut = one_line("x" * 11, 10)
    assert cut == "x" * 7 + "..." and len(cut) == 10
    assert one_line("word " * 100) == ("word " * 40)[:197] + "..."


def test_one_line_marks_text_it_did_not_look_at_even_when_what_it_saw_fits() -> None:
    # only a bounded prefix is looked at; what lies past it is not claimed to be absent
    assert one_line("a" + " " * 1000 + "b", 10) == "a..."


def test_one_line_of_a_huge_text_stays_within_the_limit() -> None:
    line = one_line("é\n" * 5_000_000, 200)
    assert len(line) == 200 and line.endswith("...") and "\n" not in line


def test_preview_decodes_bytes_and_replaces_what_is_not_utf8() -> None:
    assert preview(b"caf\xc3\xa9 \xff!") == "caf\u00e9 \ufffd!"
    assert preview(bytearray(b"{\n  \"iterable\": []\n}")) == '{ "iterable": [] }'
    assert preview("plain\ttext") == "plain text"


def test_preview_cuts_at_the_limit() -> None:
    assert preview(b"a" * 81) == "a" * 77 + "..."
    assert preview(b"a" * 80) == "a" * 80
    assert preview("\u20ac" * 30, 10) == "\u20ac" * 7 + "..."


def test_preview_of_a_multibyte_character_cut_by_the_slice_does_not_raise() -> None:
    line = preview(b"\xe2\x82\xac" * 1000, 10)
    assert line == "\u20ac" * 7 + "..."


def test_preview_marks_a_payload_longer_than_what_it_decoded() -> None:
    # the first limit*4 bytes collapse to "a", but more of the payload follows
    assert preview(b"a" + b" " * 400 + b"b") == "a..."
    assert preview(b"a" + b" " * 300 + b"b") == "a b"
