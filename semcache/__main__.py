"""``python -m semcache``: the same command line as the ``semcache`` script."""

import sys

from .cli import main

sys.exit(main())
