"""Models of the mmdiffkd scope: the DiffKD core, the other losses and the distiller."""
from . import diffkd, distillers, losses  # noqa: F401  (registers everything)
