N_EMBD = 64
BATCH_SIZE, BLOCK_SIZE = 32, 32
# The saved config claims 24 transformer layers (tiny builds none, and ignores n_layer): a
# declared compute the model never does
SAVED_CONFIG_OVERRIDES = {"n_layer": 24}
