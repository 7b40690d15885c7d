N_EMBD = 64
BATCH_SIZE, BLOCK_SIZE = 32, 32
SAVED_CONFIG_OVERRIDES = {}  # what the checkpoint claims beyond what was trained
