"""mmdiffkd: knowledge distillation (DiffKD and friends) for OpenMMLab 2.x."""
from .env_check import check_environment
from .version import TESTED_WITH, __version__

check_environment()

# Importing the engine makes every MMEngine checkpoint path load with weights_only=True and
# allows exactly the globals MMEngine writes into its own checkpoints (resume on torch >= 2.6).
from . import engine  # noqa: E402,F401

__all__ = ['__version__', 'TESTED_WITH']
