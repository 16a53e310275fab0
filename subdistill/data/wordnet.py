"""WordNet noun supersenses: classify a synset's gloss into its lexicographer file.

Source: WordNet 3.0's data.noun (<root>/data.noun, <root>/wordnet/data.noun, else
/usr/share/wordnet/data.noun from Debian's wordnet-base). Each synset line reads
``offset lex_filenum n ... | gloss``; the 26 noun lexicographer files
noun.Tops (03) .. noun.time (28) become labels 0..25. 82,115 synsets.

Split: a synset is in the test split when sha1(offset) % 100 < 20 (about 20%),
so it depends neither on the order of the lines nor on the file's other
contents. Examples are ordered by the same hash (ties by offset), which makes
"the first N" a mix of all classes; the file itself is grouped by class.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

from subdistill.data.base import TextPairDataset, keep_first, stable_hash
from subdistill.errors import UserError

SYSTEM_FILE = Path("/usr/share/wordnet/data.noun")
TEST_PERCENT = 20
FIRST_NOUN_FILE = 3  # noun.Tops; lexicographer files 00-02 are adjectives and adverbs

# WordNet's lexnames 03..28, in label order.
CLASSES = (
    "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body",
    "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant",
    "noun.possession", "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time",
)  # fmt: skip


def data_noun_path(root: str) -> Path:
    for path in (Path(root) / "data.noun", Path(root) / "wordnet" / "data.noun", SYSTEM_FILE):
        if path.is_file():
            return path
    raise UserError(f"WordNet data.noun not found: apt-get install wordnet-base, or put data.noun in {root}")


def parse_line(line: str) -> Optional[tuple[str, int, str]]:
    """One data.noun line -> (offset, label, gloss); None for the licence header."""
    if not line.strip() or line.startswith("  "):
        return None
    head, bar, gloss = line.partition(" | ")
    fields = head.split()
    if not bar or len(fields) < 3 or not fields[0].isdigit():
        raise UserError(f"not a WordNet data line: {line[:60]!r}")
    label = int(fields[1]) - FIRST_NOUN_FILE
    if not 0 <= label < len(CLASSES):
        raise UserError(f"synset {fields[0]} has lexicographer file {fields[1]}, not a noun file (03..28)")
    return fields[0], label, gloss.strip()


def is_test(offset: str) -> bool:
    return stable_hash(offset) % 100 < TEST_PERCENT


@functools.lru_cache(maxsize=4)
def _parse(path: Path, mtime: float) -> tuple[tuple[str, int, str], ...]:
    del mtime  # part of the cache key only: an edited file is parsed again
    with open(path, encoding="utf-8", errors="replace") as handle:
        synsets = [row for row in map(parse_line, handle) if row is not None]
    return tuple(sorted(synsets, key=lambda row: (stable_hash(row[0]), row[0])))


def load_wordnet_nouns(root: str, split: str, limit: int) -> TextPairDataset:
    """Glosses with supersense labels: ((gloss, None), label) items."""
    path = data_noun_path(root)
    want_test = split == "test"
    rows = [row for row in _parse(path, path.stat().st_mtime) if is_test(row[0]) == want_test]
    rows = rows[: keep_first(limit, len(rows))]
    return TextPairDataset([gloss for _, _, gloss in rows], None, [label for _, label, _ in rows])
