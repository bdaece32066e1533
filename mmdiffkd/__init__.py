"""mmdiffkd: knowledge distillation (DiffKD and friends) for OpenMMLab 2.x."""
from .env_check import check_environment
from .version import TESTED_WITH, __version__

check_environment()

__all__ = ['__version__', 'TESTED_WITH']
