"""The wording of whole-file problems: short name lists, did-you-mean hints, a full disk.

Every message and hint here is bounded in length, however many names a file holds (a header of
100,000 columns names the first few and counts the rest), and costs time linear in the number of
names: a did-you-mean search is run only for the first few unknown names, and skips long ones.
A hint is never empty: with nothing to suggest it says where the expected names are listed.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Iterator, Sequence

SHOWN = 5  # names listed in a message before "and N more"
SHOWN_IN_HINT = 10
SEARCHED = 5  # unknown names a did-you-mean search is run for
NAME_MAX = 60  # characters of a name shown before it is cut
SCHEMA_HINT = "see `eql schema show`"
DISK_FULL_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device"


def quoted(name: str) -> str:
    """A name as messages show it: quoted, and cut when long."""
    if len(name) <= NAME_MAX:
        return repr(name)
    return f"{name[:40]!r}... ({len(name):,} characters)"


def name_list(names: Sequence[str], shown: int = SHOWN, quote: bool = True) -> str:
    """'a', 'b', 'c' and 99,997 more."""
    first = [quoted(n) if quote else _cut(n) for n in names[:shown]]
    rest = len(names) - len(first)
    return ", ".join(first) + (f" and {rest:,} more" if rest > 0 else "")


def _cut(name: str) -> str:
    return name if len(name) <= NAME_MAX else name[:40] + "..."


def close_match(name: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to `name`, if one is close enough."""
    if len(name) > 2 * NAME_MAX:  # nothing that long is a typo of a schema name
        return None
    short = [c for c in candidates if len(c) <= 2 * NAME_MAX]
    found = difflib.get_close_matches(name, short, n=1)
    return found[0] if found else None


def did_you_mean(name: str, candidates: Sequence[str], otherwise: str) -> str:
    """'did you mean X?', else the candidates (a bounded list), else `otherwise`."""
    close = close_match(name, candidates)
    if close is not None:
        return f"did you mean {close!r}?"
    if candidates:
        return f"one of: {name_list(candidates, SHOWN_IN_HINT, quote=False)}"
    return otherwise


def unknown_columns(
    target: str, unknown: Sequence[str], missing: Sequence[str], expected: Sequence[str]
) -> tuple[str, str]:
    """Message and hint for a file with columns `target` lacks. `missing` are the target's
    columns the file lacks (what a misspelt name may have meant); `expected` all of them."""
    n = len(unknown)
    if n == 1:
        message = f"unknown column {quoted(unknown[0])} for {target}"
    else:
        message = f"{n:,} unknown columns for {target}: {name_list(unknown)}"
    pairs = [(u, close_match(u, missing)) for u in unknown[:SEARCHED]]
    found = [(u, m) for u, m in pairs if m is not None]
    if n == 1 and found:
        hint = f"did you mean {found[0][1]!r}?"
    elif found:
        hint = "did you mean " + ", ".join(f"{m!r} for {quoted(u)}" for u, m in found) + "?"
    elif missing:
        hint = f"columns of {target} not in the file: {name_list(missing, SHOWN_IN_HINT, False)}"
    else:
        hint = (
            f"the file already has every column of {target} "
            f"({name_list(expected, SHOWN_IN_HINT, False)}); {SCHEMA_HINT}"
        )
    them = "it" if n == 1 else "them"
    return message, f"{hint}; or pass --allow-extra-columns to ignore {them}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the exceptions it was raised from or while handling, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _says_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return DISK_FULL_TEXT in str(exc)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from or while handling, says the disk is
    full: an OSError with errno ENOSPC, or RocksDB's "IO error: No space left on device" (which
    rocksdict raises as a bare Exception)."""
    return any(_says_disk_full(e) for e in _chain(exc))


def disk_full_reason(exc: BaseException) -> str:
    """What said the disk is full, for a message: 'No space left on device: PATH', or RocksDB's
    text (which names the file it was writing)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return DISK_FULL_TEXT + (f": {e.filename}" if e.filename else "")
        if DISK_FULL_TEXT in str(e):
            text = " ".join(str(e).split())
            return text if len(text) <= 300 else text[:297] + "..."
    return DISK_FULL_TEXT
