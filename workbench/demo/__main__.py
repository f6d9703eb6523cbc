"""``python -m workbench.demo``: run the demo (see :mod:`workbench.demo`)."""

import sys

from workbench.demo import main

sys.exit(main())
