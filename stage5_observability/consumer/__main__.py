"""`python -m <stage>.consumer`: run the consumer until SIGTERM or SIGINT."""
import os
import sys

# prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when first imported: exported for gunicorn's
# workers, it would send the consumer's values into their directory and onto the producer's /metrics.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from .loop import main  # noqa: E402 - after the environment is settled

sys.exit(main())
