"""``python -m paretorch`` (and ``torchrun -m paretorch``) run the command line."""

import sys

from paretorch.cli import main

sys.exit(main())
