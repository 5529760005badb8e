"""py3langid's identifier with its byte automaton in 40% of the memory, scoring exactly as before.

py3langid finds its n-gram features with a deterministic automaton over UTF-8
bytes: ``tk_nextmove`` holds the next state for every (row, byte), 9.8 million
uint32 entries (39 MB), plus two Python lists of 104,583 ints (7 MB). The model
process held it for every language turn it judges, 53 MB of its resident memory.

The states only need 17 bits, but all but 39,048 of the 9.8 million entries
point to the 65,535 most-pointed-to states (each of the others is a leaf of the
n-gram trie, reached from exactly one entry). So the states are renumbered by
how often they are pointed to, the table keeps 16 bits, and the few far entries
live in a dict keyed by their position: one comparison per byte more, 31 MB in
all. The walk visits the same states in the same order, so the features, their
order (which fixes the float sums) and every score are those of py3langid
(``tests/models/test_langid.py`` compares them).

Imported only where a language is judged (the model process), never by the web process.
"""

from __future__ import annotations

import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, RAW_FLOOR, LanguageIdentifier

FAR = 0xFFFF  # a 16-bit entry that says "look the state up in the far entries"
_CHUNK = 1 << 20  # entries renumbered at a time: bounds the start-up copies to a few MB


class CompactIdentifier(LanguageIdentifier):
    """A ``LanguageIdentifier`` whose automaton is compacted by ``compact`` (see the module docstring)."""

    __slots__ = ("_bases", "_far", "_moves", "_outputs", "_start")

    @classmethod
    def bundled(cls, languages: list[str]) -> CompactIdentifier:
        """py3langid's bundled model, probabilities normalised, restricted to ``languages`` and compacted.

        Raises ValueError for a language code the model does not know.
        """
        identifier: CompactIdentifier = cls.from_modelpath(Path(MODEL_DIR) / MODEL_FILE, norm_probs=True)
        identifier.set_languages(languages)
        # The full 142-language matrix is kept only to undo set_languages, which is never done here.
        identifier._full_model = None
        identifier.compact()
        return identifier

    def compact(self) -> None:
        """Renumber the states, keep 16-bit moves and the far entries, and drop py3langid's tables."""
        stock: Any = self  # py3langid's own slots, untyped
        moves = np.frombuffer(stock.tk_nextmove, dtype=np.uint32)
        rows = np.asarray(stock.tk_row, dtype=np.int64)
        states = len(rows)
        order = np.argsort(-np.bincount(moves, minlength=states), kind="stable")
        renumbered = np.empty(states, dtype=np.uint32)
        near = min(FAR, states)
        renumbered[order[:near]] = np.arange(near, dtype=np.uint32)
        renumbered[order[near:]] = np.arange(FAR + 1, FAR + 1 + states - near, dtype=np.uint32)
        compact = array.array("H")
        far: dict[int, int] = {}
        for start in range(0, len(moves), _CHUNK):
            target = renumbered[moves[start : start + _CHUNK]]
            beyond = np.flatnonzero(target >= FAR)
            far.update(zip((beyond + start).tolist(), target[beyond].tolist(), strict=True))
            compact.frombytes(np.minimum(target, FAR).astype(np.uint16).tobytes())
        size = int(renumbered.max()) + 1
        bases = np.zeros(size, dtype=np.uint32)
        bases[renumbered] = rows << 8
        outputs = np.full(size, -1, dtype=np.int32)
        outputs[renumbered] = np.asarray(stock.tk_output, dtype=np.int32)
        self._moves, self._far, self._start = compact, far, int(renumbered[0])
        self._bases = array.array("I", bases.tobytes())
        self._outputs = array.array("i", outputs.tobytes())
        stock.tk_nextmove, stock.tk_row = array.array("I"), array.array("H")
        stock._rowbase, stock.tk_output = [], []

    def _raw_score(self, text: bytes) -> Any:
        """py3langid's ``_raw_score`` on the compact automaton: the NB scores of the encoded text."""
        moves, far, bases, outputs = self._moves, self._far, self._bases, self._outputs
        state = self._start
        found: list[int] = []
        add = found.append
        for byte in text:
            at = bases[state] + byte
            state = moves[at]
            if state == FAR:
                state = far[at]
            feature = outputs[state]
            if feature >= 0:
                add(feature)
        if found:
            return self._sparse_score(Counter(found), self.nb_ptc)
        return np.full(len(self.nb_classes), 0.0 if self._norm_probs else RAW_FLOOR, dtype=np.float32)
