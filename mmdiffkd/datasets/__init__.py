"""datasets."""
from .fashion_mnist import build_fashion_mnist, prepare_fashion_mnist, read_idx  # noqa: F401
