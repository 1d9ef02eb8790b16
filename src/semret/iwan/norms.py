"""Parser of the USF free-association norms, Appendix A files, exactly as the USF site serves them.

Nelson, D. L., McEvoy, C. L., & Schreiber, T. A. (2004). The University of South Florida free
association, rhyme, and word fragment norms. Behavior Research Methods, Instruments, & Computers,
36(3), 402-407.

Each file (``Cue_Target_Pairs.A-B`` ...) is text wrapped in ``<HTML><BODY><PRE>`` tags (some close
in lower case), with one header line of 31 fields; fields are separated by ``", "``, ``?`` marks a
missing value and some code fields are empty. Words may hold spaces, digits and punctuation, and
``CUE`` is also a real cue word, so only the exact header line is skipped. Every line is validated:
a bad one raises `NormsFormatError` naming the file, line, field and value.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from semret.errors import NormsFormatError

SEPARATOR = ", "
MISSING = "?"
FILE_GLOB = "Cue_Target_Pairs.*"
HEADER = (
    "CUE, TARGET, NORMED?, #G, #P, FSG, BSG, MSG, OSG, #M, MMIAS, #O, OMIAS, QSS, QFR, QCON, QH, "
    "QPS, QMC, QPR, QRSG, QUC, TSS, TFR, TCON, TH, TPS, TMC, TPR, TRSG, TUC"
).split(SEPARATOR)
#: Header spellings seen in the files as served (Cue_Target_Pairs.D-F writes TRF for TFR).
HEADER_ALIASES = {"TRF": "TFR"}
MAX_WORD_LENGTH = 128
MAX_CODE_LENGTH = 8

_WRAPPER_TAG = re.compile(r"</?\s*(?:html|body|pre)\s*>", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_INTEGER = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[0-9]*\.?[0-9]+|[0-9]+\.")


def normalise_word(text: str) -> str:
    """The key a word is stored and looked up under: upper case, single spaces, no outer blanks."""
    return " ".join(text.split()).upper()


# --- value parsers: each takes the raw field text and returns a value or raises ValueError(reason)


def _word(raw: str) -> str:
    if not raw.strip():
        raise ValueError("empty word")
    if _CONTROL.search(raw):
        raise ValueError("control character in word")
    if len(raw) > MAX_WORD_LENGTH:
        raise ValueError(f"word longer than {MAX_WORD_LENGTH} characters")
    return raw


def _yes_no(raw: str) -> bool:
    if raw not in ("YES", "NO"):
        raise ValueError("expected YES or NO")
    return raw == "YES"


def _integer(low: int = 0, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not _INTEGER.fullmatch(raw):
            raise ValueError("not a non-negative integer")
        value = int(raw)
        if value < low or (high is not None and value > high):
            raise ValueError(f"outside {low}..{high if high is not None else 'inf'}")
        return value

    return parse


def _number(low: float = 0.0, high: float = math.inf) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        if not _DECIMAL.fullmatch(raw):
            raise ValueError("not a non-negative number")
        value = float(raw)
        if not low <= value <= high:
            raise ValueError(f"outside {low:g}..{high:g}")
        return value

    return parse


def _code(raw: str) -> str:
    if len(raw) > MAX_CODE_LENGTH or not raw.isalnum():
        raise ValueError(f"expected a code of at most {MAX_CODE_LENGTH} letters")
    return raw


@dataclass(frozen=True)
class NormField:
    """One Appendix A column: its header, the record attribute it fills, its parser, and whether
    it may be missing (``?`` or empty)."""

    header: str
    name: str
    parse: Callable[[str], object]
    required: bool = False


_strength = _number(0.0, 1.0)
_concreteness = _number(1.0, 7.0)
_use_code = _integer(0, 1)

FIELDS: tuple[NormField, ...] = (
    NormField("CUE", "cue_spelling", _word, required=True),
    NormField("TARGET", "target_spelling", _word, required=True),
    NormField("NORMED?", "normed", _yes_no, required=True),
    NormField("#G", "group_size", _integer(1), required=True),
    NormField("#P", "producers", _integer(), required=True),
    NormField("FSG", "fsg", _strength, required=True),
    NormField("BSG", "bsg", _strength),
    NormField("MSG", "msg", _strength),
    NormField("OSG", "osg", _strength),
    NormField("#M", "mediators", _integer()),
    NormField("MMIAS", "mediators_missing", _integer()),
    NormField("#O", "overlaps", _number()),
    NormField("OMIAS", "overlaps_missing", _integer()),
    NormField("QSS", "cue_set_size", _integer()),
    NormField("QFR", "cue_frequency", _integer()),
    NormField("QCON", "cue_concreteness", _concreteness),
    NormField("QH", "cue_homograph", _code),
    NormField("QPS", "cue_part_of_speech", _code),
    NormField("QMC", "cue_mean_connectivity", _number()),
    NormField("QPR", "cue_resonance_probability", _strength),
    NormField("QRSG", "cue_resonant_strength", _strength),
    NormField("QUC", "cue_use_code", _use_code),
    NormField("TSS", "target_set_size", _integer()),
    NormField("TFR", "target_frequency", _integer()),
    NormField("TCON", "target_concreteness", _concreteness),
    NormField("TH", "target_homograph", _code),
    NormField("TPS", "target_part_of_speech", _code),
    NormField("TMC", "target_mean_connectivity", _number()),
    NormField("TPR", "target_resonance_probability", _strength),
    NormField("TRSG", "target_resonant_strength", _strength),
    NormField("TUC", "target_use_code", _use_code),
)
assert [f.header for f in FIELDS] == HEADER

#: Names of the typed values of a record, in file order, without the two words.
VALUE_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS[2:])


@dataclass(frozen=True, slots=True)
class NormRecord:
    """One validated cue -> target line. ``cue``/``target`` are normalised (`normalise_word`);
    ``values`` holds the other 29 fields typed, in `VALUE_NAMES` order, None where missing."""

    cue: str
    target: str
    cue_spelling: str
    target_spelling: str
    values: tuple[object, ...]
    line: int

    def value(self, name: str) -> object:
        """The value of one field by its attribute name (see `FIELDS`)."""
        return self.values[VALUE_NAMES.index(name)]


@dataclass
class NormsFile:
    """A parsed norms file: its records, checksum and, with ``skip_invalid``, the lines skipped."""

    path: Path
    sha256: str
    records: list[NormRecord]
    invalid: list[NormsFormatError] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The source name under which the file is recorded (its file name)."""
        return self.path.name


def parse_line(text: str, path: str, line: int) -> NormRecord:
    """Validate and type one data line; raise `NormsFormatError` naming the first bad field."""
    raw_fields = text.split(SEPARATOR)
    if len(raw_fields) != len(FIELDS):
        raise NormsFormatError(
            path, line, None, None, f"expected {len(FIELDS)} fields separated by ', ', found {len(raw_fields)}"
        )
    parsed: list[object] = []
    for spec, raw in zip(FIELDS, raw_fields, strict=True):
        if raw in (MISSING, ""):
            if spec.required:
                raise NormsFormatError(path, line, spec.header, raw, "required value is missing")
            parsed.append(None)
            continue
        try:
            parsed.append(spec.parse(raw))
        except ValueError as exc:
            raise NormsFormatError(path, line, spec.header, raw, str(exc)) from None
    cue_spelling, target_spelling = str(parsed[0]), str(parsed[1])
    group_size, producers = parsed[3], parsed[4]
    assert isinstance(group_size, int) and isinstance(producers, int)
    if producers > group_size:
        raise NormsFormatError(path, line, "#P", raw_fields[4], f"more producers than the group size #G={group_size}")
    cue, target = normalise_word(cue_spelling), normalise_word(target_spelling)
    return NormRecord(cue, target, cue_spelling, target_spelling, tuple(parsed[2:]), line)


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, with the HTML wrapper tags removed and blank lines dropped."""
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = _WRAPPER_TAG.sub("", raw).strip()
        if stripped:
            yield number, stripped


def _decode(data: bytes, path: str) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise NormsFormatError(path, None, None, None, "not text in UTF-8 or Windows-1252")


def _check_header(fields: list[str], path: str, line: int) -> None:
    """Accept the Appendix A header (with its known misspellings); name the first column that differs."""
    if len(fields) != len(HEADER):
        raise NormsFormatError(path, line, None, None, f"header has {len(fields)} columns, expected {len(HEADER)}")
    for expected, found in zip(HEADER, fields, strict=True):
        if HEADER_ALIASES.get(found, found) != expected:
            raise NormsFormatError(path, line, expected, found, "header column differs from the Appendix A header")


def parse_norms_text(
    text: str, path: str, *, skip_invalid: bool = False
) -> tuple[list[NormRecord], list[NormsFormatError]]:
    """Records of a whole file's text and, with ``skip_invalid``, the errors of the lines skipped.

    Without ``skip_invalid`` the first bad line raises. A header line must be the Appendix A header;
    a pair repeated within the file is an error.
    """
    records: list[NormRecord] = []
    invalid: list[NormsFormatError] = []
    seen: dict[tuple[str, str], int] = {}
    for number, line in _content_lines(text):
        try:
            fields = line.split(SEPARATOR)
            if fields[:3] == HEADER[:3]:
                _check_header(fields, path, number)
                continue
            record = parse_line(line, path, number)
            first = seen.setdefault((record.cue, record.target), number)
            if first != number:
                raise NormsFormatError(
                    path, number, None, None, f"pair {record.cue} -> {record.target} repeats line {first}"
                )
        except NormsFormatError as exc:
            if not skip_invalid:
                raise
            invalid.append(exc)
            continue
        records.append(record)
    return records, invalid


def read_norms_file(path: str | Path, *, skip_invalid: bool = False) -> NormsFile:
    """Read, checksum and parse one Appendix A file (see `parse_norms_text`)."""
    file_path = Path(path)
    try:
        data = file_path.read_bytes()
    except OSError as exc:
        raise NormsFormatError(str(file_path), None, None, None, f"cannot read the file: {exc.strerror}") from exc
    records, invalid = parse_norms_text(_decode(data, str(file_path)), str(file_path), skip_invalid=skip_invalid)
    if not records and not invalid:
        raise NormsFormatError(str(file_path), None, None, None, "no cue-target lines in the file")
    return NormsFile(file_path, hashlib.sha256(data).hexdigest(), records, invalid)


def find_norms_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files to load: each path as given, a directory contributing its ``Cue_Target_Pairs.*``."""
    found: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            members = sorted(p for p in entry.glob(FILE_GLOB) if p.is_file())
            if not members:
                raise NormsFormatError(str(entry), None, None, None, f"no {FILE_GLOB} files in this directory")
            found.extend(members)
        elif entry.is_file():
            found.append(entry)
        else:
            raise NormsFormatError(str(entry), None, None, None, "no such file or directory")
    return found


def sample_norms_dir() -> Path:
    """The small sample of the USF norms shipped inside the package (see its README)."""
    return Path(str(resources.files("semret") / "data" / "usf_norms_sample"))
