"""``python -m privguard`` runs the command line."""

import sys

from privguard.cli import main

sys.exit(main())
