"""The `shadowlab` console entry point: before anything heavy is imported, a command that loads one stored
experiment from Postgres has its heaviest reads started (`analysis.prefetch`), then the command runs
(`cli.main`). Here, as in `cli.main.settings_of`, the environment is read at the entry point only."""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from analysis.prefetch import start_from_argv

        start_from_argv(sys.argv[1:], os.environ)
        from cli.main import main as run
    except KeyboardInterrupt:  # Ctrl-C while the command is still importing: no traceback, the shell's code
        sys.exit(130)
    run()


if __name__ == "__main__":
    main()
