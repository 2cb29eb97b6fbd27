"""`python -m gardener_hf ...` = `gardener ...`."""

import sys

from .cli import main

sys.exit(main())
