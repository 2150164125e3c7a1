"""The two consoles every command and benchmark writes to: ``console`` (stderr) for
progress, logs and errors; ``out`` (stdout) for results — tables, verdicts, figures — so
they can be piped."""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)
