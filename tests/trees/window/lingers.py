"""Saves in time (tiny_train.py), then uses the save window only to exit: computes until its
clock is 0.5 s past the budget and writes nothing more (the "lingers" case: `import lingers` as
train.py)."""
import os
import time

import tiny_train  # noqa: F401  trains and saves ckpt.pt

budget = float(os.environ["DARWIN_BUDGET_S"])
start = float(os.environ["DARWIN_BUDGET_START"])


def used():
    cpu = os.environ["DARWIN_BUDGET_CLOCK"] == "cpu"
    return time.process_time() if cpu else time.time() - start


while used() < budget + 0.5:
    sum(i * i for i in range(10000))
print("lingered in the window")
