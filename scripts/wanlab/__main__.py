"""python3 -m scripts.wanlab ... (run from the repository root)."""

import sys

from .cli import main

sys.exit(main())
