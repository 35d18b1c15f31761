"""`python -m <stage>.consumer`: run the consumer until SIGTERM or SIGINT."""
import sys

from .loop import main

sys.exit(main())
