N_EMBD = 64
BATCH_SIZE, BLOCK_SIZE = 32, 32
SAVED_CONFIG_OVERRIDES = {"n_embd": 48}  # the saved config disagrees with the trained weights
