"""The rule for names users give to objects: segments, tags, clusters (and their features).

A name is checked at the door (`DEFINE`, the HTTP routes, the CLI) with `name_problem`, which says
what is wrong in words, or None. The rule (docs/tags.md, "Names"):

- 1 to `MAX_NAME_CHARS` characters;
- the first a letter or `_`; the others letters, combining marks, decimal digits or `_` (letters
  and digits of any script: `客户_30d` is a name);
- in Unicode normal form NFC (so that two names that look alike are the same text);
- hence no control, format (bidi), space, surrogate, private-use or unassigned characters.

Two names that differ only by case are the same name (`fold`): `vip` and `VIP` cannot both exist
among the segments, nor among the tags and clusters.

`label_problem` is the looser rule for free-text labels (an API key's name): printable text, no
control or bidi characters, at most `MAX_LABEL_CHARS`.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_CHARS = 64
MAX_LABEL_CHARS = 128

_LETTER = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo"))
_TAIL = _LETTER | {"Mn", "Mc", "Nd"}
# categories never allowed in a label: controls, format (bidi, zero-width), surrogates,
# private use, unassigned, line and paragraph separators
_NOT_PRINTABLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, "")
    code = f"U+{ord(ch):04X}"
    return f"{code} {name}" if name else code


def name_problem(name: str) -> str | None:
    """What is wrong with `name` as the name of a segment, tag or clusters; None if nothing."""
    if not name:
        return "a name cannot be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a name has at most {MAX_NAME_CHARS} characters (this one has {len(name)})"
    for i, ch in enumerate(name):
        cat = unicodedata.category(ch)
        if ch == "_" or cat in (_LETTER if i == 0 else _TAIL):
            continue
        where = "start with" if i == 0 else "hold"
        allowed = "a letter or _" if i == 0 else "letters, digits and _"
        return f"a name cannot {where} {_describe(ch)} (character {i + 1}); use {allowed}"
    if unicodedata.normalize("NFC", name) != name:
        return "a name must be in Unicode normal form NFC (compose its accents)"
    return None


def label_problem(label: str) -> str | None:
    """What is wrong with `label` as a free-text label (may be empty); None if nothing."""
    if len(label) > MAX_LABEL_CHARS:
        return f"a label has at most {MAX_LABEL_CHARS} characters (this one has {len(label)})"
    for i, ch in enumerate(label):
        if unicodedata.category(ch) in _NOT_PRINTABLE:
            return f"a label cannot hold {_describe(ch)} (character {i + 1})"
    return None


def shown(name: str) -> str:
    """A name as a message can show it: unprintable characters escaped, a long one cut."""
    cut = name if len(name) <= 80 else name[:77] + "..."
    if cut.isprintable():
        return cut
    return cut.encode("unicode_escape", "backslashreplace").decode("ascii")


LISTED = 10  # the defined names a "not defined" message lists


def not_defined(kind: str, name: str, defined: list[str]) -> str:
    """`segment nope is not defined (defined segments: a, b)`: what a name none has says (the
    runtime's and the library's remote mode's words are the same)."""
    if not defined:
        return f"{kind} {shown(name)} is not defined (no {kind} is defined yet)"
    listed = ", ".join(shown(n) for n in defined[:LISTED])
    more = f" and {len(defined) - LISTED} more" if len(defined) > LISTED else ""
    return f"{kind} {shown(name)} is not defined (defined {kind}s: {listed}{more})"


def versions_text(versions: list[int]) -> str:
    """`versions 1-3`, `version 1`, `versions 1-3, 5`."""
    runs: list[list[int]] = []
    for v in sorted(versions):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
    return ("version " if len(versions) == 1 else "versions ") + text


def fold(name: str) -> str:
    """The form two names are compared in: regardless of case (Unicode case folding)."""
    return name.casefold()
