"""Keywords and terminal names: which words need backticks, and how to name terminals in errors.

May import only the standard library.
"""

from __future__ import annotations

__all__ = ["HARD_KEYWORDS", "RESERVED_WORDS"]

# Words kept for later language features (funnels, sequences, retention). A bare identifier
# spelled like one of these is refused (E110); in backticks it is an ordinary name.
RESERVED_WORDS = frozenset({"FUNNEL", "RETENTION", "WITHIN", "THEN"})

# Keywords that are acceptable where a name is also acceptable, so that a bare name spelled like
# one of them would be read as the keyword (e.g. `in`, `not`, `case`, `events` after FIND).
# The printer writes such names in backticks. tests/syntax checks this set against the grammar.
HARD_KEYWORDS = frozenset(
    {
        "CASE",
        "DID",
        "DISTINCT",
        "DURING",
        "EVENTS",
        "FALSE",
        "IN",
        "NOT",
        "NULL",
        "TRUE",
        "WHEN",
        "WHERE",
    }
)
