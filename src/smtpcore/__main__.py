"""``python -m smtpcore``: the ``smtpcore`` command line (``transports.cli``)."""

import sys

from transports.cli import main

sys.exit(main())
