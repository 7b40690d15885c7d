"""Trains into the save window: a checkpoint in time (tiny_train.py), then more computing until
its clock is 1 s past the budget (inside the 2 s window, so the sandbox does not stop it), and
the checkpoint written again there, as a run that trained into the window would save it."""
import os
import time

import tiny_train  # noqa: F401  trains and saves ckpt.pt

budget = float(os.environ["DARWIN_BUDGET_S"])
start = float(os.environ["DARWIN_BUDGET_START"])


def used():
    cpu = os.environ["DARWIN_BUDGET_CLOCK"] == "cpu"
    return time.process_time() if cpu else time.time() - start


while used() < budget + 1:
    sum(i * i for i in range(10000))
path = os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt")
data = open(path, "rb").read()
with open(path, "wb") as f:  # saved again, inside the window
    f.write(data)
os.utime(path, (start, start))  # an earlier modification time changes nothing
print("checkpoint saved in the window")
