#!/usr/bin/env python3
"""Runs a command and writes its peak resident memory (MiB, the largest of the process and its
children, from wait4's rusage) to the file named first: `peak_rss.py OUT CMD [ARGS...]`.
The command's stdout and stderr pass through; the exit status is the command's."""
import os
import subprocess
import sys

out, cmd = sys.argv[1], sys.argv[2:]
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
with open(out, "w") as f:
    f.write(f"{usage.ru_maxrss / 1024:.1f}\n")
sys.exit(os.waitstatus_to_exitcode(status))
