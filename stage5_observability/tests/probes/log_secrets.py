"""Probe (S2-AC6): start a stage's logging the way gunicorn does, then log secrets in every place a record has.

Usage: python log_secrets.py <stage package dir>, with the settings to test in the environment.
"""
import logging
import runpy
import sys
from pathlib import Path

from loguru import logger  # the specification names loguru as the stage's logging library

package = sys.argv[1]
# gunicorn.conf.py is the documented start-up entry point: it checks the settings and installs the log sink.
runpy.run_path(str(Path(package) / "gunicorn.conf.py"))

argon2_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$ZGlnZXN0ZGlnZXN0ZGlnZXN0"
token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
logger.info("login password=hunter2-secret with Authorization: Basic dXNlcjpodW50ZXI=")
logger.info("stored " + argon2_hash + " and Bearer " + token)
logger.bind(password="hunter2-secret", jwt_secret="signing-key-secret").info("fields")
logger.info("dsn mysql+pymysql://producer:dsn-secret-pw@db:3306/producer")
logging.getLogger("probe.library").warning("library connects to mysql+pymysql://producer:dsn-secret-pw@db:3306/x")
try:
    raise RuntimeError("failed with token=" + token)
except RuntimeError:
    logger.exception("boom")
logger.info('forged\n{"level": "INFO", "msg": "fake"}')
