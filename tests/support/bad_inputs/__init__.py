"""The hostile-input corpus of issue 20: bad flags, settings, files and database states for every command.

Each case is data: the command line, the environment (over a clean SHADOWLAB_* one), the files put in the
working folder first, and what must come out: the exit code (2 a bad input, 3 a service out of reach) and
a piece of the one `error:` line (the field named, and what was expected). `tests/shadowlab/
test_bad_inputs.py` runs every case through the CLI's entry point in process.

Placeholders in `argv` and `env`: `{free_port}` a port nothing listens on, `{taken_port}` a port a socket
holds while the case runs. `db` is the database the case starts with: none, a migrated SQLite file
(`sqlite:///x.db`), or one holding experiment `x` (spec `SPEC`, created by the test).
"""

from __future__ import annotations

from tests.support.bad_inputs.case import SPEC, SQLITE, BadInput
from tests.support.bad_inputs.experiment_and_usage import EXPERIMENT_AND_USAGE
from tests.support.bad_inputs.flags_and_files import FLAGS_AND_FILES
from tests.support.bad_inputs.settings import DATABASE_STATES, SETTINGS
from tests.support.bad_inputs.specs import SPECS

__all__ = ["BAD_INPUTS", "SPEC", "SQLITE", "BadInput"]

COMMANDS = [*FLAGS_AND_FILES, *EXPERIMENT_AND_USAGE]
BAD_INPUTS: list[BadInput] = [*SETTINGS, *DATABASE_STATES, *SPECS, *COMMANDS]
