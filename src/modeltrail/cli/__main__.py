"""`python -m modeltrail.cli`: the same command as `modeltrail`."""

import sys

from . import main

sys.exit(main())
