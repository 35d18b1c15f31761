"""`python -m stage4_kafka.consumer`: run the consumer until SIGTERM or SIGINT."""
import sys

from .loop import main

sys.exit(main())
