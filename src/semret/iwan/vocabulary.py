"""Map a dataset's class labels to words of the loaded free-association norms.

IWAN links each image to the norm words of its predicted class labels, but labels are written for
people and datasets ("maple_tree", "Ankle boot", "T-shirt/top") while norm words are normalised
words the USF participants were shown ("TREE", "BOOT", "T-SHIRT"). `Vocabulary.build` maps every
label by the first rule that applies, and keeps the labels it cannot map in
`Vocabulary.unmapped` instead of dropping them:

1. ``alias``: the label has an entry in an alias table (see `load_aliases`); every alias word must
   be a known word, so an alias file cannot silently point at nothing;
2. ``exact``: the normalised label, or the label with ``_``, ``/`` and ``-`` read as spaces;
3. ``variant``: a singular or plural form of the whole label (of its last word);
4. ``compound``: the label's parts (split on spaces, ``_``, ``-``, ``/``), each known exactly or
   through a variant; adjacent parts are joined first where the joined phrase is known.

Alias files are text, one label per line (``label: WORD, WORD``, ``#`` comments); the ones for
the datasets semret knows ship in ``semret/data/vocabulary`` and load with `dataset_aliases`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Literal

from semret.errors import SemretError
from semret.iwan.norms import normalise_word

How = Literal["alias", "exact", "variant", "compound"]

ALIAS_SUFFIX = ".aliases"
#: Characters that separate the parts of a label ("maple_tree", "T-shirt/top", "Ankle boot").
_PART = re.compile(r"[^\s_/-]+")
_SEPARATORS = re.compile(r"[_/-]")
_DATASET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")

#: Irregular singular -> plural forms (upper case); the inverse table is derived below.
IRREGULAR_PLURALS: dict[str, str] = {
    "MAN": "MEN",
    "WOMAN": "WOMEN",
    "CHILD": "CHILDREN",
    "PERSON": "PEOPLE",
    "MOUSE": "MICE",
    "LOUSE": "LICE",
    "GOOSE": "GEESE",
    "FOOT": "FEET",
    "TOOTH": "TEETH",
    "OX": "OXEN",
    "DIE": "DICE",
    "CACTUS": "CACTI",
    "FUNGUS": "FUNGI",
    "OCTOPUS": "OCTOPI",
    "CRITERION": "CRITERIA",
    "PHENOMENON": "PHENOMENA",
}
_IRREGULAR_SINGULARS: dict[str, str] = {plural: singular for singular, plural in IRREGULAR_PLURALS.items()}
_VOWELS = frozenset("AEIOU")


class AliasFileError(SemretError):
    """An alias file, or one line of it, is malformed; the message names the file and line."""

    def __init__(self, source: str, line: int | None, reason: str):
        self.source = source
        self.line = line
        self.reason = reason
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class LabelWords:
    """The norm words one label maps to (normalised, in order, no duplicates) and the rule used."""

    label: str
    words: tuple[str, ...]
    how: How


# --- word forms ------------------------------------------------------------------------------


def plural_forms(word: str) -> list[str]:
    """Candidate plurals of one upper-case word, likeliest first (BUS -> BUSES, LEAF -> LEAVES)."""
    if word in IRREGULAR_PLURALS:
        return [IRREGULAR_PLURALS[word]]
    forms: list[str] = []
    if word.endswith(("S", "X", "Z", "CH", "SH")):
        forms.append(word + "ES")
    elif len(word) > 1 and word.endswith("Y") and word[-2] not in _VOWELS:
        forms.append(word[:-1] + "IES")
    elif word.endswith("FE"):
        forms.append(word[:-2] + "VES")
    elif word.endswith("F"):
        forms.append(word[:-1] + "VES")
    elif word.endswith("O"):
        forms.append(word + "ES")
    forms.append(word + "S")
    return forms


def singular_forms(word: str) -> list[str]:
    """Candidate singulars of one upper-case word, likeliest first (SHOES -> SHOE, MICE -> MOUSE)."""
    if word in _IRREGULAR_SINGULARS:
        return [_IRREGULAR_SINGULARS[word]]
    forms: list[str] = []
    if word.endswith("IES") and len(word) > 3:
        forms.append(word[:-3] + "Y")
    if word.endswith("VES") and len(word) > 3:
        forms += [word[:-3] + "F", word[:-3] + "FE"]
    if word.endswith("S") and not word.endswith(("SS", "US", "IS")) and len(word) > 1:
        forms.append(word[:-1])
        if word.endswith("ES") and len(word) > 2:
            forms.append(word[:-2])
    return forms


def word_variants(phrase: str) -> list[str]:
    """Singular/plural variants of a normalised phrase, inflecting its last word ("HOT DOG" ->
    "HOT DOGS"); a phrase ending in S tries its singulars first."""
    head, _, last = phrase.rpartition(" ")
    prefix = f"{head} " if head else ""
    plurals, singulars = plural_forms(last), singular_forms(last)
    ordered = singulars + plurals if last.endswith("S") else plurals + singulars
    seen: dict[str, None] = {}
    for form in ordered:
        if form and form != last:
            seen.setdefault(prefix + form)
    return list(seen)


def _spellings(text: str) -> list[str]:
    """The normalised spellings tried for a label or phrase: as written, then separators as spaces."""
    forms = [normalise_word(text), normalise_word(_SEPARATORS.sub(" ", text))]
    return [form for i, form in enumerate(forms) if form and form not in forms[:i]]


# --- alias files -----------------------------------------------------------------------------


def parse_aliases(text: str, source: str) -> dict[str, list[str]]:
    """Alias entries of an alias file's text: label as written -> normalised words.

    One entry a line, ``label: WORD, WORD``; ``#`` starts a comment, blank lines are ignored. The
    label is everything before the first ``:``. A line without ``:``, label or words, an empty
    word, a word repeated in a line, or a label given twice (compared after `normalise_word`)
    raises `AliasFileError` naming ``source`` and the line.
    """
    entries: dict[str, list[str]] = {}
    first_line: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        label, colon, rest = line.partition(":")
        label = " ".join(label.split())
        if not colon:
            raise AliasFileError(source, number, f"expected 'label: WORD, WORD', found {line!r}")
        if not label:
            raise AliasFileError(source, number, "no label before ':'")
        if not rest.strip():
            raise AliasFileError(source, number, f"no words after ':' for label {label!r}")
        words: list[str] = []
        for item in rest.split(","):
            word = normalise_word(item)
            if not word:
                raise AliasFileError(source, number, f"empty word in the list for label {label!r}")
            if word in words:
                raise AliasFileError(source, number, f"word {word!r} repeated for label {label!r}")
            words.append(word)
        key = normalise_word(label)
        if key in first_line:
            earlier, spelling = first_line[key]
            raise AliasFileError(source, number, f"label {label!r} already given on line {earlier} as {spelling!r}")
        first_line[key] = (number, label)
        entries[label] = words
    return entries


def load_aliases(path: str | Path) -> dict[str, list[str]]:
    """Alias entries of one alias file (UTF-8); see `parse_aliases` for the format and errors."""
    file_path = Path(path)
    try:
        text = file_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AliasFileError(str(file_path), None, f"cannot read the alias file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise AliasFileError(str(file_path), None, f"not UTF-8 text ({exc.reason})") from exc
    return parse_aliases(text, str(file_path))


def _packaged_alias_dir() -> Traversable:
    return resources.files("semret") / "data" / "vocabulary"


def available_datasets() -> list[str]:
    """Names of the datasets with a packaged alias file (``fashion-mnist``, ``cifar10``...)."""
    folder = _packaged_alias_dir()
    if not folder.is_dir():
        return []
    names = (entry.name for entry in folder.iterdir() if entry.is_file())
    return sorted(name.removesuffix(ALIAS_SUFFIX) for name in names if name.endswith(ALIAS_SUFFIX))


def dataset_aliases(name: str) -> dict[str, list[str]]:
    """The packaged alias entries of a dataset by name (read through importlib.resources, so it
    works from an installed wheel); an unknown name raises `SemretError` listing the known ones."""
    available = available_datasets()
    if not _DATASET_NAME.fullmatch(name) or name not in available:
        raise SemretError(
            f"no alias file for dataset {name!r}; available: {', '.join(available) if available else 'none'}"
        )
    resource = _packaged_alias_dir() / f"{name}{ALIAS_SUFFIX}"
    return parse_aliases(resource.read_text(encoding="utf-8"), f"semret/data/vocabulary/{name}{ALIAS_SUFFIX}")


# --- the vocabulary --------------------------------------------------------------------------


class Vocabulary:
    """The mapping of one dataset's labels to norm words; build it with `Vocabulary.build`."""

    def __init__(self, labels: Sequence[str], mapping: Mapping[str, LabelWords]):
        """Hold an already computed mapping (``labels`` in class order, ``mapping`` for the mapped
        ones); use `build` to compute one."""
        self._labels = list(labels)
        self._mapping = dict(mapping)
        self._keys = _label_keys(self._labels)
        stray = [label for label in self._mapping if label not in self._keys.values()]
        if stray:
            raise SemretError(f"mapping for labels not in the vocabulary: {', '.join(stray)}")

    @classmethod
    def build(
        cls,
        labels: Sequence[str],
        known_words: Collection[str],
        aliases: Mapping[str, Sequence[str]] | None = None,
    ) -> Vocabulary:
        """Map each label to known words by the first rule that applies: alias, exact, variant,
        compound (see the module docstring). Labels that map to nothing end up in `unmapped`.

        ``known_words`` are the words of the loaded norms (normalised here, so any case works);
        ``aliases`` maps labels (matched after `normalise_word`) to words. An alias used by one
        of the labels whose word is not known raises `SemretError` naming the label and the word.
        """
        known = frozenset(normalise_word(word) for word in known_words)
        alias_table = _alias_table(aliases or {})
        _label_keys(labels)  # rejects empty and duplicate labels before any work
        mapping: dict[str, LabelWords] = {}
        for label in labels:
            found = _map_label(label, known, alias_table)
            if found is not None:
                mapping[label] = found
        return cls(labels, mapping)

    @property
    def labels(self) -> list[str]:
        """All labels, in class order."""
        return list(self._labels)

    @property
    def mapping(self) -> dict[str, LabelWords]:
        """Label -> its `LabelWords`, for the mapped labels, in class order."""
        return dict(self._mapping)

    @property
    def unmapped(self) -> list[str]:
        """Labels that no rule mapped, in class order."""
        return [label for label in self._labels if label not in self._mapping]

    @property
    def words(self) -> list[str]:
        """Every distinct word used by the mapping, in order of first use."""
        seen: dict[str, None] = {}
        for entry in self._mapping.values():
            for word in entry.words:
                seen.setdefault(word)
        return list(seen)

    def words_for(self, label: str) -> tuple[str, ...]:
        """The words of one label (matched after `normalise_word`, so case does not matter); an unmapped
        label gives ``()``; a label not in the vocabulary raises `SemretError` listing the labels."""
        resolved = self._keys.get(normalise_word(label))
        if resolved is None:
            raise SemretError(f"unknown label {label!r}; the labels are: {', '.join(self._labels)}")
        entry = self._mapping.get(resolved)
        return entry.words if entry is not None else ()

    def class_words(self, labels: Iterable[str]) -> list[tuple[str, ...]]:
        """The words of each label, in the order given: the words of each class-probability column
        when ``labels`` are a classifier's classes (an unmapped class gives ``()``)."""
        return [self.words_for(label) for label in labels]

    def require_complete(self) -> None:
        """Raise `SemretError` naming every unmapped label, so a run cannot lose classes silently."""
        missing = self.unmapped
        if missing:
            raise SemretError(
                f"{len(missing)} of {len(self._labels)} labels map to no word of the norms: "
                f"{', '.join(repr(label) for label in missing)}; add them to an alias file"
            )

    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self) -> Iterator[str]:
        return iter(self._labels)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self._labels)} labels, {len(self._mapping)} mapped, {len(self.unmapped)} unmapped)"


def _label_keys(labels: Sequence[str]) -> dict[str, str]:
    """Normalised label -> label; rejects empty labels and labels equal after `normalise_word`."""
    keys: dict[str, str] = {}
    for label in labels:
        key = normalise_word(label)
        if not key:
            raise SemretError(f"empty class label in {list(labels)!r}")
        if key in keys:
            raise SemretError(f"class labels {keys[key]!r} and {label!r} are the same label")
        keys[key] = label
    return keys


def _alias_table(aliases: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, list[str]]]:
    """Normalised label -> (label as written, normalised words), rejecting clashes and empty lists."""
    table: dict[str, tuple[str, list[str]]] = {}
    for label, words in aliases.items():
        if isinstance(words, str):
            raise SemretError(f"alias for label {label!r} must be a list of words, not the string {words!r}")
        key = normalise_word(label)
        if key in table:
            raise SemretError(f"alias labels {table[key][0]!r} and {label!r} are the same label")
        normalised = list(dict.fromkeys(normalise_word(word) for word in words))
        if not normalised or "" in normalised:
            raise SemretError(f"alias for label {label!r} has an empty word list or an empty word")
        table[key] = (label, normalised)
    return table


def _lookup(spellings: Sequence[str], known: frozenset[str]) -> tuple[str, How] | None:
    """The first spelling that is known, else the first known variant of one of them."""
    for spelling in spellings:
        if spelling in known:
            return spelling, "exact"
    for spelling in spellings:
        for variant in word_variants(spelling):
            if variant in known:
                return variant, "variant"
    return None


def _compound(label: str, known: frozenset[str]) -> tuple[str, ...]:
    """Known words of the label's parts, left to right; at each part the longest run of adjacent
    parts that is known (as written or space-joined, exactly or as a variant) is taken first."""
    parts = [(m.start(), m.end()) for m in _PART.finditer(label)]
    words: dict[str, None] = {}
    i = 0
    while i < len(parts):
        for j in range(len(parts), i, -1):
            phrase = label[parts[i][0] : parts[j - 1][1]]
            found = _lookup(_spellings(phrase), known)
            if found is not None:
                words.setdefault(found[0])
                i = j
                break
        else:
            i += 1
    return tuple(words)


def _map_label(label: str, known: frozenset[str], aliases: Mapping[str, tuple[str, list[str]]]) -> LabelWords | None:
    """Apply the rules in order to one label; None when none maps it."""
    alias = aliases.get(normalise_word(label))
    if alias is not None:
        unknown = [word for word in alias[1] if word not in known]
        if unknown:
            raise SemretError(
                f"alias for label {label!r} names {', '.join(repr(w) for w in unknown)}, "
                "which the loaded norms do not have"
            )
        return LabelWords(label, tuple(alias[1]), "alias")
    spellings = _spellings(label)
    found = _lookup(spellings, known)
    if found is not None:
        return LabelWords(label, (found[0],), found[1])
    parts = _compound(label, known)
    if parts:
        return LabelWords(label, parts, "compound")
    return None
