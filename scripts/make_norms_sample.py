"""Cut the USF norms sample that ships inside the package, verbatim, from the original files.

The sample holds every line whose cue is a clothing or footwear word (the words of Fashion-MNIST's
classes and their aliases) or one of their associates that is itself a cue, and every line whose
target is such a word, so that the embedded demo maps all its labels and has a connected graph.
Lines are copied unchanged, in the original Appendix A format.

    uv run python scripts/make_norms_sample.py ../shared/data/usf-norms
"""

from __future__ import annotations

import argparse
from pathlib import Path

from semret.iwan.norms import HEADER, SEPARATOR, find_norms_files, normalise_word, read_norms_file

SEED_WORDS = [
    "SHIRT",
    "TROUSERS",
    "PANTS",
    "SWEATER",
    "DRESS",
    "COAT",
    "SANDALS",
    "SNEAKER",
    "SNEAKERS",
    "BAG",
    "PURSE",
    "BOOT",
    "BOOTS",
    "SHOE",
    "SHOES",
    "JACKET",
    "SKIRT",
    "CLOTHES",
    "T-SHIRT",
]
OUTPUT = Path(__file__).resolve().parents[1] / "src/semret/data/usf_norms_sample/Cue_Target_Pairs.sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("norms_dir", type=Path, help="directory of the original Cue_Target_Pairs.* files")
    args = parser.parse_args()
    paths = find_norms_files([args.norms_dir])
    records = [r for p in paths for r in read_norms_file(p).records]
    cues = {r.cue for r in records}
    seed = {w for w in SEED_WORDS if w in cues}
    seed_words = set(SEED_WORDS)
    keep = seed | {r.target for r in records if r.cue in seed and r.target in cues}
    lines = [SEPARATOR.join(HEADER)]
    for path in paths:
        for line in path.read_text().splitlines():
            fields = line.split(SEPARATOR)
            if (
                len(fields) == len(HEADER)
                and fields[:3] != HEADER[:3]
                and (normalise_word(fields[0]) in keep or normalise_word(fields[1]) in seed_words)
            ):
                lines.append(line)
    OUTPUT.write_text("<HTML>\n<BODY>\n<PRE>\n" + "\n".join(lines) + "\n</PRE>\n</BODY>\n</HTML>\n")
    print(f"wrote {len(lines) - 1} lines for {len(keep)} cues to {OUTPUT}")


if __name__ == "__main__":
    main()
