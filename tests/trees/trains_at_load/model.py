"""Computes when the model server builds it (not when training does: no DARWIN_DATA there), as
a model that trained itself at load time on data carried in its checkpoint would: 8 CPU
seconds, then tiny's model (tiny_model.py)."""
import os
import time

import tiny_model


def build_model(config):
    if "DARWIN_DATA" not in os.environ:
        t0 = time.process_time()
        while time.process_time() - t0 < 8:
            sum(i * i for i in range(10000))
    return tiny_model.build_model(config)
