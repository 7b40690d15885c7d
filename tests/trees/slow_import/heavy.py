"""A module whose import computes for budget + 6 CPU seconds (like a huge import or a compile
step)."""
import os
import time

while time.process_time() < float(os.environ["DARWIN_BUDGET_S"]) + 6:
    sum(i * i for i in range(10000))
