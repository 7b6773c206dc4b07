"""Names people and devices type for catalog entries, and how they are matched.

``NameIndex`` holds every name of one kind (commodity ids, names and aliases; province codes,
names and short forms) in normalised form. Resolving is a dict lookup, and fuzzy suggestions
("did you mean") compare with a fixed list of names and refuse to look at text longer than
any name, so no input makes matching cost more than a short typo does. Pure: no I/O.
"""
from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

__all__ = ["NameIndex", "normalise", "slugify"]

SUGGEST_CUTOFF = 0.75
# A part of a longer name ("cabe rawit" of "cabe rawit merah") scores this much of a whole name.
PART_WEIGHT = 0.95
# Characters a query may exceed the longest name by and still be compared (a typo adds a few).
SUGGEST_MARGIN = 8
# Text longer than this is not even normalised for matching: no name comes near it.
MAX_MATCH_TEXT = 256


def slugify(text: str) -> str:
    """Lowercase ASCII words joined by hyphens: the form of commodity and market ids.

    >>> slugify("Pasar Warung Jambu 2"), slugify("  Kab. Cirebon "), slugify("Cabai Rawit Merah")
    ('pasar-warung-jambu-2', 'kab-cirebon', 'cabai-rawit-merah')
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def normalise(text: str) -> str:
    """Lowercase ASCII words separated by single spaces: the form names are compared in.

    >>> normalise("  Cabe-Rawit  JABAR! ")
    'cabe rawit jabar'
    """
    return slugify(text).replace("-", " ")


class NameIndex:
    """Every name of one kind (commodities or provinces), normalised, and the key each names.

    Built once per catalog. Resolving is one dict lookup; suggesting compares the text with a
    fixed list of names, and text longer than every name by more than ``SUGGEST_MARGIN`` is
    not compared at all (it cannot be a typo of one), so the work per call is bounded
    whatever a client sends.

    >>> index = NameIndex({"32": ("32", "Jawa Barat", "Jabar")})
    >>> index.resolve("JAWA-BARAT"), index.match_prefix(["jabar", "cabai"]), index.suggest("jawa brat")
    ('32', ('32', 1), ['32'])
    """

    def __init__(self, names: dict[str, tuple[str, ...]]) -> None:
        self.keys = list(names)
        self.by_name: dict[str, str] = {}
        for key, texts in names.items():
            for text in texts:
                self.by_name.setdefault(normalise(text), key)
        self.names = {key: list(dict.fromkeys(map(normalise, texts))) for key, texts in names.items()}
        self.longest = max(map(len, self.by_name))
        self.most_words = max(len(name.split()) for name in self.by_name)
        self._candidates: dict[int, list[tuple[str, str, float]]] = {}

    def resolve(self, text: str) -> str | None:
        if len(text) > MAX_MATCH_TEXT:
            return None
        return self.by_name.get(normalise(text))

    def match_prefix(self, words: list[str]) -> tuple[str, int] | None:
        """The key the longest run of leading ``words`` names, and how many words that took.

        ``words`` are normalised (``normalise(text).split()``); only runs up to the longest
        name's word count are tried, so the cost does not grow with the number of words.
        """
        for count in range(min(len(words), self.most_words), 0, -1):
            key = self.by_name.get(" ".join(words[:count]))
            if key is not None:
                return key, count
        return None

    def suggest(self, text: str, limit: int = 3) -> list[str]:
        """Keys whose names are close to ``text``, best first (at most ``limit``)."""
        if len(text) > MAX_MATCH_TEXT:
            return []
        query = normalise(text)
        if not query or len(query) > self.longest + SUGGEST_MARGIN:
            return []
        # The query is the matcher's second sequence: SequenceMatcher caches what it learns of
        # that one, and the cheap upper bounds skip most names before the full comparison.
        matcher = SequenceMatcher(None, "", query)
        best: dict[str, float] = {}
        for key, candidate, weight in self._candidates_for(len(query.split())):
            floor = max(best.get(key, 0.0), SUGGEST_CUTOFF)
            matcher.set_seq1(candidate)
            if (weight * matcher.real_quick_ratio() < floor or weight * matcher.quick_ratio() < floor):
                continue
            score = weight * matcher.ratio()
            if score >= floor:
                best[key] = score
        # sorted() is stable, so equal scores keep the catalog's order.
        ranked = sorted((key for key in self.keys if key in best), key=lambda key: -best[key])
        return ranked[:limit]

    def _candidates_for(self, width: int) -> list[tuple[str, str, float]]:
        """(key, text, weight) to compare a query of ``width`` words with.

        People type part of a long name ("cabe rawit" for "cabe rawit merah", "rice" for
        "medium quality rice"), so each run of ``width`` words of a longer name is a candidate
        too; such a part scores a little below a whole name so that "papua barat" ranks Papua
        Barat above Papua Barat Daya.
        """
        width = min(width, self.most_words)
        if width not in self._candidates:
            candidates: list[tuple[str, str, float]] = []
            for key, names in self.names.items():
                for name in names:
                    candidates.append((key, name, 1.0))
                    words = name.split()
                    parts = dict.fromkeys(" ".join(words[i:i + width])
                                          for i in range(len(words) - width + 1))
                    candidates += [(key, part, PART_WEIGHT) for part in parts if part != name]
            self._candidates[width] = candidates
        return self._candidates[width]
