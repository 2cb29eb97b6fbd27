"""`python -m gardener_hf.cli ...` = `gardener ...`."""

import sys

from . import main

sys.exit(main())
