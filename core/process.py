"""Ending processes that host the Temporal SDK's native runtime."""

import logging
import os
import sys
from typing import NoReturn


def exit_after_shutdown(code: int = 0) -> NoReturn:
    """Exit without interpreter finalization, once everything has shut down cleanly.

    The Temporal SDK's Rust runtime keeps native threads that can call into Python while the interpreter
    finalizes, which now and then aborts the process (SIGABRT: "PyGILState_Release … finalizing") after a
    clean shutdown. All work is finished and flushed by the time this is called.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
