"""Make the codec test doubles (``codec_recorder.py``, beside this file) importable.

The suite runs with ``--import-mode=importlib``, which leaves ``sys.path``
alone, so the helper module's folder is added here once.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
