"""Fashion-MNIST IDX reading and preparation (numpy only; the real Debian files when present)."""
import gzip
import os
import os.path as osp

import numpy as np
import pytest
from helpers import REPO

from mmdiffkd.datasets.fashion_mnist import (DEBIAN_DIR, FILES, build_fashion_mnist,
                                             prepare_fashion_mnist, read_idx)

HAS_DEBIAN = osp.isfile(osp.join(DEBIAN_DIR, 'train-images-idx3-ubyte.gz'))


def _idx_bytes(array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype('>i4'): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.array(array.shape, dtype='>u4').tobytes()
    return header + array.tobytes()


def _fake_source(folder, n_train=60000, n_test=10000, label_max=9, gz=True):
    """Write the four files with the official shapes (zeros, cheap) and given label range."""
    rng = np.random.default_rng(0)
    sizes = {'train': n_train, 't10k': n_test}
    for name in FILES:
        n = sizes[name.split('-')[0]]
        if 'images' in name:
            array = np.zeros((n, 28, 28), np.uint8)
            array[:, 0, 0] = np.arange(n) % 251
        else:
            array = rng.integers(0, label_max + 1, n).astype(np.uint8)
        data = _idx_bytes(array)
        if gz:
            with gzip.open(osp.join(folder, name + '.gz'), 'wb', compresslevel=1) as f:
                f.write(data)
        else:
            with open(osp.join(folder, name), 'wb') as f:
                f.write(data)


def test_read_idx_roundtrip_plain_and_gz(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / 'a').write_bytes(_idx_bytes(array))
    with gzip.open(tmp_path / 'a.gz', 'wb') as f:
        f.write(_idx_bytes(array))
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'a')), array)
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'a.gz')), array)
    wide = np.array([1, -2, 70000], dtype='>i4')
    (tmp_path / 'b').write_bytes(_idx_bytes(wide))
    np.testing.assert_array_equal(read_idx(str(tmp_path / 'b')), [1, -2, 70000])


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / 'bad').write_bytes(b'\x01\x02\x08\x01' + b'\x00' * 8)
    with pytest.raises(ValueError, match='not an IDX file'):
        read_idx(str(tmp_path / 'bad'))
    data = _idx_bytes(np.zeros((5, 2), np.uint8))
    (tmp_path / 'short').write_bytes(data[:-3])
    with pytest.raises(ValueError, match='truncated'):
        read_idx(str(tmp_path / 'short'))


def test_prepare_missing_source_names_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match='apt-get install dataset-fashion-mnist'):
        prepare_fashion_mnist(str(tmp_path / 'root'), source=str(tmp_path / 'nowhere'))


def test_prepare_rejects_wrong_shapes_and_labels(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    _fake_source(str(src), n_train=100)
    with pytest.raises(ValueError, match=r'shape \(100, 28, 28\).*\(60000, 28, 28\)'):
        prepare_fashion_mnist(str(tmp_path / 'root'), source=str(src))
    _fake_source(str(src), label_max=12)
    with pytest.raises(ValueError, match='labels in'):
        prepare_fashion_mnist(str(tmp_path / 'root2'), source=str(src))


@pytest.mark.parametrize('gz', [True, False])
def test_prepare_ungzips_once_and_repairs(tmp_path, gz):
    src, root = tmp_path / 'src', tmp_path / 'root'
    src.mkdir()
    _fake_source(str(src), gz=gz)
    prepare_fashion_mnist(str(root), source=str(src))
    assert sorted(os.listdir(root)) == sorted(FILES)  # no temporary files left
    images = read_idx(str(root / 'train-images-idx3-ubyte'))
    assert images.shape == (60000, 28, 28) and images[7, 0, 0] == 7
    # A second call keeps good files untouched...
    stamp = os.stat(root / 'train-images-idx3-ubyte').st_mtime_ns
    prepare_fashion_mnist(str(root), source=str(src))
    assert os.stat(root / 'train-images-idx3-ubyte').st_mtime_ns == stamp
    # ...and rewrites a truncated one.
    path = root / 't10k-labels-idx1-ubyte'
    path.write_bytes(path.read_bytes()[:-10])
    prepare_fashion_mnist(str(root), source=str(src))
    assert read_idx(str(path)).shape == (10000, )


def test_builder_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split='val'.*'train', 'test' or 'holdout'"):
        build_fashion_mnist(str(tmp_path), split='val')
    with pytest.raises(ValueError, match='contradicts'):
        build_fashion_mnist(str(tmp_path), split='test', test_mode=False)
    with pytest.raises(ValueError, match='never downloads'):
        build_fashion_mnist(str(tmp_path), download=True)


@pytest.mark.skipif(not HAS_DEBIAN, reason='needs Debian dataset-fashion-mnist (tools/setup.sh)')
def test_holdout_split_is_the_end_of_the_training_file(tmp_path):
    """split='holdout' = training images 50000..59999: disjoint from any train subset N <= 50000,
    and from the test images."""
    root = str(tmp_path / 'fm')
    train = build_fashion_mnist(root, split='train')
    holdout = build_fashion_mnist(root, split='holdout')
    assert len(holdout) == 10000
    first = holdout.get_data_info(0)
    assert first['gt_label'] == train.get_data_info(50000)['gt_label']
    assert np.array_equal(first['img'], train.get_data_info(50000)['img'])
    assert np.array_equal(holdout.get_data_info(9999)['img'], train.get_data_info(59999)['img'])
    assert len(build_fashion_mnist(root, split='holdout', indices=100)) == 100
    with pytest.raises(ValueError, match='1 <= N <= 10000'):
        build_fashion_mnist(root, split='holdout', indices=20000)
    with pytest.raises(ValueError, match='contradicts'):
        build_fashion_mnist(root, split='holdout', test_mode=False)


@pytest.mark.skipif(not HAS_DEBIAN, reason='needs Debian dataset-fashion-mnist (tools/setup.sh)')
def test_prepare_real_debian_files(tmp_path):
    root = prepare_fashion_mnist(str(tmp_path / 'fm'))
    labels = read_idx(osp.join(root, 'train-labels-idx1-ubyte'))
    assert np.bincount(labels).tolist() == [6000] * 10  # the official, balanced release
    test_labels = read_idx(osp.join(root, 't10k-labels-idx1-ubyte'))
    assert np.bincount(test_labels).tolist() == [1000] * 10


def test_prepare_tool_reports_missing_package(tmp_path, capsys):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'prepare_fm', osp.join(REPO, 'tools', 'prepare_fashion_mnist.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main(['--data-root', str(tmp_path / 'r'), '--source', str(tmp_path)]) == 1
    assert 'apt-get install dataset-fashion-mnist' in capsys.readouterr().err
    src = tmp_path / 'src'
    src.mkdir()
    _fake_source(str(src))
    assert tool.main(['--data-root', str(tmp_path / 'r'), '--source', str(src)]) == 0
    assert 'train-images-idx3-ubyte  (60000, 28, 28)' in capsys.readouterr().out
