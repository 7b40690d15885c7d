"""Ignores its budget: trains (tiny_train.py, a checkpoint in time), then keeps computing until
it has used its budget plus 6 s of CPU (so at least as much wall time) and writes a second
checkpoint then."""
import os
import time

import tiny_train  # noqa: F401  trains and saves ckpt.pt

budget = float(os.environ["DARWIN_BUDGET_S"])
while time.process_time() < budget + 6:
    sum(i * i for i in range(10000))
path = os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt")
data = open(path, "rb").read()
with open(path, "wb") as f:  # written again, past the budget
    f.write(data)
print("late checkpoint written")
