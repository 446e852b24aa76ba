"""``python -m transports``: the smtpcore command line."""

import sys

from .cli import main

sys.exit(main())
