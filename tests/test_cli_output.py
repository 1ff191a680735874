"""The command line behaves like a Unix tool when its output is cut short: `stronglens sql ... | head`
ends quietly with the shell's SIGPIPE status instead of a Python traceback."""

from __future__ import annotations

import subprocess
import sys

from stronglens import cli

# A command that prints far more than a pipe buffer holds, so its writes fail once the reader is gone.
FLOODING_COMMAND = """
import sys
from stronglens import cli

def flood(args):
    for i in range(10**6):
        print(f"row {i}")
    return 0

cli.cmd_builds = flood
sys.exit(cli.main(["builds"]))
"""


def test_closed_stdout_ends_quietly_with_the_sigpipe_status() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOODING_COMMAND], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline() == b"row 0\n"
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == cli.SIGPIPE_EXIT == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
