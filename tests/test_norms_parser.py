"""The USF Appendix A parser, on fixtures written in the original format and on broken lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from semret.errors import NormsFormatError
from semret.iwan.norms import HEADER, VALUE_NAMES, find_norms_files, parse_norms_text, read_norms_file

FIXTURES = Path(__file__).parent / "fixtures" / "norms"
GOOD_LINE = (
    "APPLE, RED, YES, 149, 31, .208, 0.000, .0060, .0048, 2, 0, 2.0, 0, 17, 9, 7.00, , N, 1.56, .24, .051, 1, "
    "19, 197, 5.50, , AJ, 1.68, .32, .115, 1"
)
HEADER_LINE = ", ".join(HEADER)


def wrap(*lines: str) -> str:
    return "<HTML>\n<BODY>\n<PRE>\n" + "\n".join(lines) + "\n</PRE>\n</BODY>\n</HTML>\n"


def test_fixture_files_parse_every_data_line_and_skip_only_the_header() -> None:
    ab, c = (read_norms_file(p) for p in find_norms_files([FIXTURES]))
    assert (ab.name, len(ab.records), ab.invalid) == ("Cue_Target_Pairs.A-B", 7, [])
    assert (c.name, len(c.records), c.invalid) == ("Cue_Target_Pairs.C", 8, [])
    # CUE is a real cue word: its rows are data, not headers.
    assert [(r.cue, r.target) for r in c.records[:2]] == [("CUE", "POOL"), ("CUE", "STICK")]
    assert c.records[0].line == 5  # line numbers count the wrapper lines and the header


def test_words_with_spaces_punctuation_and_digits_are_kept_whole() -> None:
    records = [r for p in find_norms_files([FIXTURES]) for r in read_norms_file(p).records]
    targets = {r.target for r in records}
    assert {"B & E", "B.O.", "49'ER", "7-ELEVEN", "911", "HOT DOGS"} <= targets


def test_double_space_is_normalised_and_original_spelling_kept() -> None:
    bologna = next(r for r in read_norms_file(FIXTURES / "Cue_Target_Pairs.A-B").records if r.cue == "BOLOGNA")
    assert bologna.target == "HOT DOGS"
    assert bologna.target_spelling == "HOT  DOGS"


def test_values_are_typed_and_missing_or_empty_fields_are_none() -> None:
    records, _ = parse_norms_text(wrap(HEADER_LINE, GOOD_LINE), "x")
    apple = records[0]
    assert apple.value("normed") is True
    assert apple.value("group_size") == 149 and apple.value("producers") == 31
    assert apple.value("fsg") == 0.208 and apple.value("bsg") == 0.0
    assert apple.value("overlaps") == 2.0
    assert apple.value("cue_homograph") is None  # empty field
    assert apple.value("target_part_of_speech") == "AJ"
    bologna = next(r for r in read_norms_file(FIXTURES / "Cue_Target_Pairs.A-B").records if r.cue == "BOLOGNA")
    assert bologna.value("normed") is False
    assert bologna.value("bsg") is None and bologna.value("target_set_size") is None  # "?"
    assert len(apple.values) == len(VALUE_NAMES) == 29


def test_lower_case_wrapper_tags_and_tags_on_data_lines_are_removed() -> None:
    text = f"<html><body><pre>{HEADER_LINE}\n{GOOD_LINE}</pre></body></html>"
    records, _ = parse_norms_text(text, "x")
    assert [(r.cue, r.target) for r in records] == [("APPLE", "RED")]


def test_plain_text_without_wrapper_or_header_parses() -> None:
    records, _ = parse_norms_text(GOOD_LINE + "\r\n", "x")
    assert records[0].value("target_use_code") == 1


def test_known_header_misspelling_is_accepted_other_header_changes_are_not() -> None:
    assert read_norms_file(FIXTURES / "Cue_Target_Pairs.C").records  # its header spells TRF for TFR
    bad_header = HEADER_LINE.replace("QCON", "QCONC")
    with pytest.raises(NormsFormatError) as error:
        parse_norms_text(wrap(bad_header, GOOD_LINE), "f.txt")
    assert (error.value.line, error.value.field, error.value.value) == (4, "QCON", "QCONC")


def replace_field(line: str, index: int, value: str) -> str:
    fields = line.split(", ")
    fields[index] = value
    return ", ".join(fields)


@pytest.mark.parametrize(
    ("bad_line", "field", "value", "reason"),
    [
        (replace_field(GOOD_LINE, 5, "x"), "FSG", "x", "not a non-negative number"),
        (replace_field(GOOD_LINE, 5, "1.5"), "FSG", "1.5", "outside 0..1"),
        (replace_field(GOOD_LINE, 2, "MAYBE"), "NORMED?", "MAYBE", "expected YES or NO"),
        (replace_field(GOOD_LINE, 3, "-3"), "#G", "-3", "not a non-negative integer"),
        (replace_field(GOOD_LINE, 3, "?"), "#G", "?", "required value is missing"),
        (replace_field(GOOD_LINE, 0, ""), "CUE", "", "required value is missing"),
        (replace_field(GOOD_LINE, 4, "150"), "#P", "150", "more producers than the group size"),
        (replace_field(GOOD_LINE, 15, "9.5"), "QCON", "9.5", "outside 1..7"),
        (replace_field(GOOD_LINE, 17, "NOUN-ISH"), "QPS", "NOUN-ISH", "expected a code"),
        (replace_field(GOOD_LINE, 21, "2"), "QUC", "2", "outside 0..1"),
        (GOOD_LINE.rsplit(", ", 1)[0], None, None, "expected 31 fields"),
        (GOOD_LINE.replace(", RED, ", ",RED, "), None, None, "expected 31 fields"),
    ],
)
def test_a_bad_line_names_file_line_field_and_value(
    bad_line: str, field: str | None, value: str | None, reason: str
) -> None:
    text = wrap(HEADER_LINE, GOOD_LINE, bad_line)
    with pytest.raises(NormsFormatError) as error:
        parse_norms_text(text, "norms/Cue_Target_Pairs.X")
    assert (error.value.path, error.value.line, error.value.field, error.value.value) == (
        "norms/Cue_Target_Pairs.X",
        6,
        field,
        value,
    )
    assert reason in error.value.reason
    assert str(error.value).startswith("norms/Cue_Target_Pairs.X:6: ")


def test_skip_invalid_keeps_the_good_lines_and_reports_each_bad_one() -> None:
    text = wrap(HEADER_LINE, replace_field(GOOD_LINE, 5, "x"), GOOD_LINE, "JUNK")
    records, invalid = parse_norms_text(text, "f", skip_invalid=True)
    assert [(r.cue, r.target, r.line) for r in records] == [("APPLE", "RED", 6)]
    assert [(e.line, e.field) for e in invalid] == [(5, "FSG"), (7, None)]


def test_a_pair_repeated_in_a_file_is_an_error_naming_both_lines() -> None:
    with pytest.raises(NormsFormatError, match="pair APPLE -> RED repeats line 5") as error:
        parse_norms_text(wrap(HEADER_LINE, GOOD_LINE, GOOD_LINE), "f")
    assert error.value.line == 6


def test_windows_1252_text_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "Cue_Target_Pairs.X"
    path.write_bytes(wrap(HEADER_LINE, GOOD_LINE.replace("RED, ", "CAF\u00c9, ", 1)).encode("cp1252"))
    assert read_norms_file(path).records[0].target == "CAF\u00c9"


def test_files_without_data_and_missing_paths_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "Cue_Target_Pairs.E"
    empty.write_text(wrap(HEADER_LINE))
    with pytest.raises(NormsFormatError, match="no cue-target lines"):
        read_norms_file(empty)
    with pytest.raises(NormsFormatError, match="no such file or directory"):
        find_norms_files([tmp_path / "absent"])
    no_norms = tmp_path / "no norms here"
    no_norms.mkdir()
    with pytest.raises(NormsFormatError, match=r"no Cue_Target_Pairs\.\* files"):
        find_norms_files([no_norms])
