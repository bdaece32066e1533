"""mmdiffkd: knowledge distillation (DiffKD and friends) for OpenMMLab 2.x.

Importing the package (``import mmdiffkd``, ``custom_imports=['mmdiffkd']`` in a config, or
importing any of its modules) does two things, in this order, and nothing else:

1. :func:`~mmdiffkd.env_check.check_environment`: a warning naming every OpenMMLab package
   whose version this release was not tested with, and the tested versions (an ``ImportError``
   instead with ``MMDIFFKD_STRICT_ENV=1``, as ``tools/run_tests.sh`` and CI run).
2. :func:`install_safe_loaders`, the one entry point of safe checkpoint loading: every MMEngine
   checkpoint scheme (local files, URLs, ``torchvision://``, ``open-mmlab://``, ...) loads with
   ``torch.load(weights_only=True)``, and exactly the globals MMEngine pickles into its own
   checkpoints are allowed. It is idempotent; the distiller calls it again when it is built and
   the tools before they run. See :mod:`mmdiffkd.utils.checkpoint`.

Models, losses, hooks and datasets register when a config first names them (``mmdiffkd.X``,
or ``X`` with ``default_scope='mmdiffkd'``): the registries of :mod:`mmdiffkd.registry` know
the modules to import.
"""
from .env_check import check_environment
from .version import TESTED_WITH, __version__

check_environment()

# After the check, which names a missing or far-off mmengine before this import trips on it.
from .utils.checkpoint import install_safe_loaders  # noqa: E402

install_safe_loaders()

__all__ = ['__version__', 'TESTED_WITH', 'install_safe_loaders']
