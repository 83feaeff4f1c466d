"""The oiforge error tree. Library code raises these; only the CLI turns them into exit codes.

    OiforgeError                      exit 1: something failed
    ├── UserError                     exit 2: the input was wrong; the message says how to fix it
    │   ├── UnknownClassError         a class name/MID that no class list has (with suggestions)
    │   ├── SpecError                 an invalid spec file or flag combination
    │   │   └── NotEnoughNegativesError  --negatives verified finds too few (counts, fixes)
    │   └── InvalidInputError         a bad path, id, URL or argument
    ├── DataError                     a file's content is not what it should be
    │   ├── MalformedFileError        a CSV/JSON/Parquet that does not parse (names file and line)
    │   └── ChecksumError             bytes whose size or MD5/SHA-256 differ from the known value
    ├── FetchError                    a remote file could not be fetched (names the URL)
    └── StageError                    a stage could not run (missing input, earlier stage not run)

Per-item failures inside a stage (one image that 404s) are *values* (an outcome with a status),
never exceptions: a run never stops for one bad item.
"""

from __future__ import annotations

from collections.abc import Sequence


class OiforgeError(Exception):
    """Base of every error oiforge raises on purpose."""

    exit_code = 1


class UserError(OiforgeError):
    """The user's input was wrong; the message names the fix."""

    exit_code = 2


class UnknownClassError(UserError):
    """A class name or MID that is not in the class list, with the closest names."""

    def __init__(self, name: str, suggestions: Sequence[str] = (), version: str = "") -> None:
        self.name = name
        self.suggestions = list(suggestions)
        where = f" in Open Images {version}" if version else ""
        hint = (
            f"; did you mean {', '.join(repr(s) for s in self.suggestions)}?" if suggestions else ""
        )
        super().__init__(f"unknown class {name!r}{where}{hint} (search with `oiforge classes`)")


class SpecError(UserError):
    """An invalid spec file or an impossible combination of options."""


class NotEnoughNegativesError(SpecError):
    """``negatives: verified`` found fewer verified negatives than a split wants."""

    def __init__(
        self, classes: Sequence[str], have: dict[str, int], wanted: dict[str, int], ratio: float
    ) -> None:
        self.have, self.wanted = have, wanted
        short = [s for s in have if have[s] < wanted[s]]
        counts = ", ".join(f"{s} {have[s]} of {wanted[s]}" for s in short)
        fits = min(have[s] / wanted[s] for s in short) * ratio
        lower = f"a lower --negatives-ratio (at most {fits:.2f} fits)" if fits > 0 else ""
        what = ", ".join(classes) if len(classes) <= 5 else f"{len(classes)} classes"
        fixes = ", ".join(x for x in ("--negatives both (the rest drawn at random)",
                                      "--negatives random", lower) if x)  # fmt: skip
        super().__init__(
            f"too few verified negatives for {what}: {counts} wanted (photos a human verified "
            f"as not showing it, with no positive label of it or a sub-class); use {fixes}"
        )


class InvalidInputError(UserError):
    """A bad path, identifier, URL or argument."""


class DataError(OiforgeError):
    """A file's content is not what it should be."""


class MalformedFileError(DataError):
    """A file that does not parse; names the file and, where known, the line."""

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"malformed file {where}: {reason}")


class ChecksumError(DataError):
    """Bytes whose size or digest differ from the known value."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: expected {expected}, got {actual}")


class FetchError(OiforgeError):
    """A remote file could not be fetched."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"could not fetch {url}: {reason}")


class StageError(OiforgeError):
    """A stage could not run, e.g. its input from an earlier stage is missing."""
