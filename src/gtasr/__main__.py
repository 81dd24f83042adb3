"""``python -m gtasr`` runs the command line."""

import sys

from gtasr.cli import main

sys.exit(main())
