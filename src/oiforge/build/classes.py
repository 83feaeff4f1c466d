"""Class names → safe, unique folder names, with the mapping to MIDs kept (classes.json)."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from typing import Final

from oiforge.contracts.dataset import ClassInfo

_UNSAFE: Final = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
_SPACE: Final = re.compile(r"\s+")
_RESERVED: Final = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)
MAX_FOLDER_LEN: Final = 100


def safe_folder_name(name: str) -> str:
    """A folder name that works on every OS and loader: no separators, no spaces, not hidden."""
    text = unicodedata.normalize("NFC", name).strip()
    text = _UNSAFE.sub("_", _SPACE.sub("_", text)).strip("._ ")
    if not text or text.lower() in _RESERVED:
        text = f"class_{text}".rstrip("_")
    return text[:MAX_FOLDER_LEN]


def _mid_suffix(mid: str) -> str:
    return safe_folder_name(mid.replace("/", "_")) or "x"


def make_classes(names_by_mid: dict[str, str]) -> list[ClassInfo]:
    """Classes with unique folders (case-insensitively), indexed in sorted folder order."""
    folders = {mid: safe_folder_name(name) for mid, name in names_by_mid.items()}
    clashes: dict[str, list[str]] = defaultdict(list)
    for mid, folder in folders.items():
        clashes[folder.casefold()].append(mid)
    for mids in clashes.values():
        if len(mids) > 1:
            for mid in mids:
                folders[mid] = f"{folders[mid][: MAX_FOLDER_LEN - 20]}__{_mid_suffix(mid)}"
    seen: set[str] = set()
    for mid in sorted(folders):  # MIDs that still clash after the suffix get a number
        base, n = folders[mid], 1
        while folders[mid].casefold() in seen:
            n += 1
            folders[mid] = f"{base}_{n}"
        seen.add(folders[mid].casefold())
    ordered = sorted(folders.items(), key=lambda kv: (kv[1], kv[0]))
    return [ClassInfo(i, names_by_mid[mid], folder, mid) for i, (mid, folder) in enumerate(ordered)]


def reindex(classes: list[ClassInfo], keep: set[str]) -> list[ClassInfo]:
    """Only the classes whose MID is in ``keep``, indexed again from 0 in folder order."""
    kept = [c for c in classes if c.mid in keep]
    return [ClassInfo(i, c.name, c.folder, c.mid) for i, c in enumerate(kept)]
