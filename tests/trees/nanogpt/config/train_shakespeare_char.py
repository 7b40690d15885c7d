# a character-level Shakespeare model small enough for a CPU minute

out_dir = 'out-shakespeare-char'
eval_interval = 250
eval_iters = 20
log_interval = 1

always_save_checkpoint = False

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 8
block_size = 64 # characters of context

n_layer = 2
n_head = 2
n_embd = 64
dropout = 0.0

learning_rate = 1e-3 # small networks take a higher rate
max_iters = 5000
lr_decay_iters = 300 # a few hundred steps fit a short budget
min_lr = 1e-4 # learning_rate / 10
beta2 = 0.99 # few tokens per step: a quicker second moment

warmup_iters = 20
