"""Run every example of the documentation and compare its output with ``<name>.out``.

Usage: ``python docs/examples/check.py`` (exits non-zero on any difference).
Each example runs in its own interpreter with ``-X dev -W error``, so a
``ResourceWarning`` (an event or a post left behind) fails it too.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failures = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name:
            continue
        expected_file = script.with_suffix(".out")
        proc = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        expected = expected_file.read_text() if expected_file.exists() else ""
        if proc.returncode != 0 or proc.stderr or proc.stdout != expected:
            failures += 1
            print(f"FAIL {script.name} (exit {proc.returncode})")
            sys.stdout.writelines(
                difflib.unified_diff(
                    expected.splitlines(True),
                    proc.stdout.splitlines(True),
                    "expected",
                    "actual",
                )
            )
            if proc.stderr:
                print(proc.stderr)
        else:
            print(f"ok   {script.name}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
