raise RuntimeError("boom: the learning-rate schedule is empty")
