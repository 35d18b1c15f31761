"""Probe (S2-AC7): start a stage's logging the way gunicorn does, then log through the standard library.

Usage: python log_stdlib.py <stage package dir>, with the settings to test in the environment.
"""
import logging
import runpy
import sys
from pathlib import Path

package = sys.argv[1]
# gunicorn.conf.py is the documented start-up entry point: it checks the settings and installs the log sink.
runpy.run_path(str(Path(package) / "gunicorn.conf.py"))


class ProbeError(Exception):
    """Raised only to log a record with a traceback."""


# A library logger with no handler of its own, as SQLAlchemy's or Flask's are: it can only reach the
# sink through the root logger. WARNING and ERROR pass any sensible root level.
library = logging.getLogger("probe.library")
library.warning("stdlib-warning-from-probe")
try:
    raise ProbeError("stdlib-exception-from-probe")
except ProbeError:
    library.exception("stdlib-error-from-probe")
