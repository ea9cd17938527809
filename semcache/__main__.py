"""``python -m semcache`` is the ``semcache`` command."""

import sys

from .cli import main

sys.exit(main())
