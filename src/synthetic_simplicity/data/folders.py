"""What a folder holds, said in one line, for messages about a data root that is not what it should be."""

from __future__ import annotations

from pathlib import Path


def describe(folder: Path, limit: int = 8) -> str:
    """'3 entries: a/, b.csv, c.txt' (folders end with /), or '(empty)'."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(folder).iterdir())
    except OSError as e:
        return f"(unreadable: {e.strerror or e})"
    if not names:
        return "(empty)"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{len(names)} {'entry' if len(names) == 1 else 'entries'}: {', '.join(names[:limit])}{more}"
