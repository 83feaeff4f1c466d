"""Ending a process that has closed its outputs, without the interpreter's teardown.

A normal exit frees every module and object one by one (after a select or a download, with
DuckDB, Arrow and NumPy loaded, that is 40-100 ms of a command's wall time) although the
operating system reclaims all of it at once. :func:`exit_now` runs what an exit must run
(atexit handlers, logging's shutdown, the flush of stdout and stderr) and then ends the
process. Only for a command whose every file is durably written and closed (``atomic``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading


def exit_now(code: int) -> None:
    """Exit with ``code`` as Python would, minus the teardown; returns (and the caller exits
    normally) while another thread is left, since a normal exit would wait for it."""
    if threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
