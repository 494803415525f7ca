"""``python -m campusllm.sim --port 8765``: run the simulator in the foreground."""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
