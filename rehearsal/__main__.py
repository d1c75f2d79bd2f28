"""`python -m rehearsal ...`: see rehearsal/cli/main.py."""

import sys

from rehearsal.cli.main import main

sys.exit(main())
