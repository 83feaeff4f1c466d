"""Golden files in ``tests/golden/``: compare, or rewrite them with ``REGEN_GOLDEN=1``.

Regenerate after an intended change with ``REGEN_GOLDEN=1 .venv/bin/python -m pytest <test>``,
then review the diff of ``tests/golden/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent.parent / "golden"
REGEN = os.environ.get("REGEN_GOLDEN") == "1"


def check_text(name: str, text: str) -> None:
    """``text`` equals ``tests/golden/<name>`` byte for byte (rewritten under REGEN_GOLDEN=1)."""
    path = GOLDEN / name
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} changed (REGEN_GOLDEN=1 to accept)"


def check_json(name: str, value: Any) -> None:
    """``value`` equals the JSON in ``tests/golden/<name>`` (written sorted, indent 1)."""
    path = GOLDEN / name
    text = json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    if REGEN:
        path.write_text(text, encoding="utf-8")
    assert json.loads(path.read_text(encoding="utf-8")) == json.loads(text), f"regenerate {path}?"
