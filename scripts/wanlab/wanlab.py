#!/usr/bin/env python3
"""scripts/wanlab/wanlab.py COMMAND ...: the lab CLI, runnable from any folder."""

import sys
from pathlib import Path

# Run as a file, this folder would shadow the package; import it from the repository root instead.
sys.path[0] = str(Path(__file__).resolve().parents[2])

from scripts.wanlab.cli import main  # noqa: E402

sys.exit(main())
