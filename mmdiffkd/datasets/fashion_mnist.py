"""Fashion-MNIST from Debian's ``dataset-fashion-mnist``, read through mmpretrain's dataset.

mmpretrain's ``FashionMNIST`` reads the four *un-gzipped* IDX files from ``data_root`` and, when
they are missing, downloads them. :func:`prepare_fashion_mnist` un-gzips the Debian package's
files into ``data_root`` once (checked, atomic), so no download is ever attempted, and the
registered ``mmdiffkd.FashionMNIST`` prepares before it builds mmpretrain's dataset with
``download=False``. It also fixes one trap of mmpretrain 1.2.0: there the file set follows
``test_mode``, not ``split``, so ``split='test'`` alone silently loads the 60k training images.
"""
import gzip
import os
import os.path as osp
import shutil
import tempfile

import numpy as np

from mmdiffkd.registry import DATASETS

DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
INSTALL_HINT = 'sudo apt-get install dataset-fashion-mnist'
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot')
# Un-gzipped file name -> expected array shape (the official release: 60k train, 10k test).
FILES = {
    'train-images-idx3-ubyte': (60000, 28, 28),
    'train-labels-idx1-ubyte': (60000, ),
    't10k-images-idx3-ubyte': (10000, 28, 28),
    't10k-labels-idx1-ubyte': (10000, ),
}
# IDX type codes (third byte of the magic number) -> numpy dtype, big-endian as stored.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def _parse_idx(data, name):
    """Parse the bytes of one IDX file: magic ``0 0 type ndim``, ``ndim`` big-endian sizes."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f'{name} is not an IDX file: magic bytes {list(data[:4])}, expected '
                         f'[0, 0, type, ndim] with type in {sorted(_IDX_DTYPES)}.')
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(data[4:header], dtype='>u4'))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f'{name} is truncated or padded: {len(data)} bytes, but its header '
                         f'(shape {shape}, dtype {dtype}) needs {expected}.')
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def read_idx(path):
    """Read an IDX file (plain or ``.gz``) into a numpy array of the shape its header gives."""
    opener = gzip.open if str(path).endswith('.gz') else open
    with opener(path, 'rb') as f:
        return _parse_idx(f.read(), str(path))


def _check_array(array, name):
    """The array must have the official shape; labels must be classes 0..9."""
    if array.shape != FILES[name]:
        raise ValueError(f'{name} has shape {array.shape}; Fashion-MNIST needs {FILES[name]}.')
    if 'labels' in name and (array.min() < 0 or array.max() >= len(CLASSES)):
        raise ValueError(f'{name} has labels in [{array.min()}, {array.max()}]; valid: 0..9.')


def prepare_fashion_mnist(data_root='data/fashion_mnist', source=DEBIAN_DIR):
    """Un-gzip the four Fashion-MNIST IDX files from ``source`` into ``data_root``, once.

    A file already in ``data_root`` is kept when its size matches its header; otherwise it is
    rewritten (through a temporary file and an atomic rename, so concurrent ranks are safe).
    ``source`` may hold the ``.gz`` files (Debian) or un-gzipped ones. Returns ``data_root``.
    Raises ``FileNotFoundError`` naming the package to install when a file is missing.
    """
    os.makedirs(data_root, exist_ok=True)
    for name in FILES:
        target = osp.join(data_root, name)
        if osp.isfile(target) and _idx_size_ok(target):
            continue
        src = next((p for p in (osp.join(source, name + '.gz'), osp.join(source, name))
                    if osp.isfile(p)), None)
        if src is None:
            raise FileNotFoundError(
                f'Fashion-MNIST file {name}(.gz) not found in {source!r}. Install the Debian '
                f'package with `{INSTALL_HINT}` (it provides {DEBIAN_DIR}), or pass the folder '
                'that holds the four IDX files as `source` / `--source`.')
        array = read_idx(src)
        _check_array(array, name)
        fd, tmp = tempfile.mkstemp(dir=data_root, prefix=f'.{name}.')
        try:
            with os.fdopen(fd, 'wb') as out:
                opener = gzip.open if src.endswith('.gz') else open
                with opener(src, 'rb') as f:
                    shutil.copyfileobj(f, out)
            os.replace(tmp, target)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
    return data_root


def _idx_size_ok(path):
    """True when the file's length is what its IDX header promises and its shape is official."""
    try:
        array = read_idx(path)
        _check_array(array, osp.basename(path))
    except (ValueError, KeyError):
        return False
    return True


# split='holdout': the last HOLDOUT images of the training file, scored when tuning. Runs that tune
# train on a subset of the first 60000 - HOLDOUT (``indices=N``, N <= 50000), so the held-out
# images are seen by no model of the comparison and the test images by no tuning decision.
HOLDOUT = 10000
NUM_TRAIN = FILES['train-labels-idx1-ubyte'][0]


@DATASETS.register_module(name='FashionMNIST')
def build_fashion_mnist(data_root='data/fashion_mnist',
                        split='train',
                        source=DEBIAN_DIR,
                        test_mode=None,
                        **kwargs):
    """Prepare ``data_root`` from ``source`` and build mmpretrain's ``FashionMNIST`` on it.

    ``split``: 'train' (60000 images), 'test' (10000) or 'holdout' (the last 10000 training
    images, for tuning). ``test_mode`` follows it (an explicit value that contradicts it is an
    error). Other kwargs (``pipeline``, ``indices`` for the first N images of the split, ...) go
    to mmpretrain's dataset. Never downloads.
    """
    if split not in ('train', 'test', 'holdout'):
        raise ValueError(f"split={split!r} is not valid; use 'train', 'test' or 'holdout'.")
    evaluates = split != 'train'
    if test_mode is not None and test_mode != evaluates:
        raise ValueError(f'test_mode={test_mode} contradicts split={split!r}; leave test_mode '
                         'out (it follows split).')
    if kwargs.pop('download', False):
        raise ValueError('download=True is not supported: mmdiffkd prepares the files from '
                         f'{source!r} ({INSTALL_HINT}) and never downloads.')
    prepare_fashion_mnist(data_root, source)
    from mmpretrain.datasets import FashionMNIST
    if split == 'holdout':
        first = NUM_TRAIN - HOLDOUT
        count = kwargs.pop('indices', None)
        if count is None:
            count = HOLDOUT
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= HOLDOUT:
            raise ValueError(f"split='holdout' takes indices=N, the first N of its {HOLDOUT} "
                             f'images (1 <= N <= {HOLDOUT}); got {count!r}.')
        # mmpretrain picks the files by test_mode: False reads the training file.
        return FashionMNIST(data_root=data_root, split='train', test_mode=False,
                            download=False, indices=list(range(first, first + count)),
                            **kwargs)
    return FashionMNIST(data_root=data_root, split=split, test_mode=split == 'test',
                        download=False, **kwargs)
