"""`python -m slimtext ...`: the same as the `slimtext` command (slimtext/cli.py)."""

import sys

from slimtext.cli import main

sys.exit(main())
