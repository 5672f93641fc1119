"""grl_torchrl: GenerativeRL's value networks and gym simulator, native to TorchRL."""

__version__ = "0.4.3"

from grl_torchrl import nn, objectives, rl_modules  # noqa: E402
from grl_torchrl.rl_modules import *  # noqa: E402,F401,F403
from grl_torchrl.rl_modules import __all__ as _rl_all  # noqa: E402

__all__ = ["__version__", "nn", "objectives", "rl_modules", *_rl_all]
