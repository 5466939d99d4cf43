"""``python -m dspex_bridge.worker``: runs the worker (:func:`dspex_bridge.worker.server.main`),
as the ``dspex-worker`` command does."""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
