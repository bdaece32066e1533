"""datasets."""
from .fashion_mnist import build_fashion_mnist, prepare_fashion_mnist, read_idx  # noqa: F401
from .scenes_seg import ScenesSegDataset  # noqa: F401
