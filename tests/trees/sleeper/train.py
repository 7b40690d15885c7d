"""Waits 12 s before training: free on the cpu clock, spent on the wall clock."""
import time

time.sleep(12)
import tiny_train  # noqa: E402,F401
