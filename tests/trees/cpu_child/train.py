"""Hands its budget's work to a child process and waits for it (waiting costs this process no
CPU), then trains and saves in no time."""
import os
import subprocess
import sys

seconds = float(os.environ["DARWIN_BUDGET_S"]) + 6
subprocess.run([sys.executable, "-c", "import time\nwhile time.process_time() < %r:\n"
                "    sum(i * i for i in range(10000))" % seconds], check=True)
import tiny_train  # noqa: E402,F401
