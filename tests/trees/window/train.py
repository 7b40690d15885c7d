"""Trains into the save window: a checkpoint in time, more computing until its clock is 0.5 s
past the budget (inside the 2 s window, so the sandbox does not stop it: lingers.py), and the
checkpoint written again there, as a run that trained into the window would save it."""
import os

from lingers import start

path = os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt")
data = open(path, "rb").read()
with open(path, "wb") as f:  # saved again, inside the window
    f.write(data)
os.utime(path, (start, start))  # an earlier modification time changes nothing
print("checkpoint saved in the window")
