import os

import torch
import torch.nn as nn

from snoop import snoop

snoop("train")
torch.save({"darwin_ckpt": 1, "model_config": {}, "model": nn.Linear(1, 1).state_dict()},
           os.path.join(os.environ["DARWIN_OUT"], "ckpt.pt"))
