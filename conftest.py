"""pytest settings shared by tests/ and the doctests in grl_torchrl/."""

import torch

# The suite's networks are small: one thread is as fast on an idle machine and keeps the
# updates from slowing down many-fold when the machine is shared (CI runs on 2 cores).
torch.set_num_threads(1)
