"""The Fashion-MNIST demo on a tiny subset of the real data: teacher + DiffKD student through the
same configs and code path as ``tools/demo.py`` (a few iterations each)."""
import importlib.util
import os.path as osp

import pytest
import torch
from helpers import REPO

from mmdiffkd.datasets.fashion_mnist import DEBIAN_DIR

pytest.importorskip('mmpretrain', reason='needs mmpretrain (bash tools/setup.sh)')

pytestmark = pytest.mark.skipif(
    not osp.isfile(osp.join(DEBIAN_DIR, 't10k-images-idx3-ubyte.gz')),
    reason='needs Debian dataset-fashion-mnist (bash tools/setup.sh)')


def _demo():
    spec = importlib.util.spec_from_file_location('mmdiffkd_demo', osp.join(REPO, 'tools',
                                                                             'demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def demo():
    return _demo()


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    from mmdiffkd.datasets import prepare_fashion_mnist
    return prepare_fashion_mnist(str(tmp_path_factory.mktemp('fm')))


def _args(demo, tmp_path, data_root, **kw):
    argv = ['--work-dir', str(tmp_path), '--data-root', data_root, '--train-size', '256',
            '--val-size', '200', '--teacher-epochs', '1', '--student-epochs', '1',
            '--num-workers', '0', '--no-progress']
    for key, value in kw.items():
        argv += [f'--{key.replace("_", "-")}'] + ([str(v) for v in value]
                                                  if isinstance(value, list) else [str(value)])
    return demo.parse_args(argv)


def test_split_test_loads_the_test_set(data_root):
    from mmengine.registry import init_default_scope

    from mmdiffkd.registry import DATASETS
    init_default_scope('mmpretrain')
    test = DATASETS.build(dict(type='mmdiffkd.FashionMNIST', data_root=data_root, split='test',
                               indices=3, pipeline=[]))
    train = DATASETS.build(dict(type='mmdiffkd.FashionMNIST', data_root=data_root,
                                split='train', indices=3, pipeline=[]))
    assert len(test) == 3 and len(train) == 3
    # mmpretrain alone would load the training images for split='test' (test_mode unset).
    assert not (test[0]['img'] == train[0]['img']).all()
    assert test.test_mode and not train.test_mode


def test_teacher_and_diffkd_student_train_and_cache(demo, tmp_path, data_root):
    args = _args(demo, tmp_path, data_root, methods=['diffkd'])
    path, teacher = demo.get_teacher(args, progress=False)
    assert not teacher['cached'] and osp.isfile(path)
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    assert any(k.startswith('backbone.layer4') for k in ckpt['state_dict'])
    assert 0.0 <= teacher['top1'] <= 100.0 and len(teacher['curve']) == 1

    # The same settings reuse the checkpoint; another seed is another teacher.
    path2, again = demo.get_teacher(args, progress=False)
    assert again['cached'] and path2 == path and again['top1'] == teacher['top1']
    assert demo.config_hash(demo.load_config(
        demo.TEACHER, work_dir='a', data_root='b', train_size=256, epochs=1, seed=1)) != \
        demo.config_hash(demo.load_config(
            demo.TEACHER, work_dir='a', data_root='b', train_size=256, epochs=1, seed=0))

    # The key does not depend on where the checkout or the cache lies (a second worktree, a
    # moved clone): the teacher counts by its checkpoint's file name, the repository by a
    # placeholder; what the run is still counts.
    def kd_key(ckpt, tau=4.0, repo=None):
        cfg = demo.load_config(demo.STUDENTS['kd'], work_dir='a', data_root='b', train_size=256,
                               epochs=1, seed=0, teacher_checkpoint=ckpt)
        cfg.model.distill_losses.logits.loss.tau = tau
        if repo is None:
            return demo.config_hash(cfg)
        # the same config, loaded by the demo of a checkout elsewhere
        teacher, here = cfg.model.teacher, demo.REPO
        assert teacher.config.startswith(here)
        teacher.config = teacher.config.replace(here, repo)
        try:
            demo.REPO = repo
            return demo.config_hash(cfg)
        finally:
            demo.REPO = here
    name = osp.basename(path)
    assert kd_key(path) == kd_key(str(tmp_path / 'elsewhere' / name), repo='/srv/other_clone')
    assert kd_key(path) != kd_key(path, tau=2.0)
    assert kd_key(path) != kd_key(str(tmp_path / 'teacher_0123456789ab.pth'))

    # Student runs are cached too (the table can be printed again without training).
    first = demo.train_student('student', args, path, progress=False)
    second = demo.train_student('student', args, path, progress=False)
    assert not first['cached'] and second['cached'] and second['top1'] == first['top1']
    assert first['params'] * 10 < teacher['params']

    cfg = demo.load_config(demo.STUDENTS['diffkd'], work_dir=str(tmp_path / 'diffkd'),
                           data_root=data_root, train_size=256, epochs=1, seed=0, val_size=200,
                           num_workers=0, teacher_checkpoint=path)
    runner, curve, _ = demo.train(cfg, 'diffkd', progress=False)
    logged = set(runner.message_hub.log_scalars)
    for part in ('loss_feat_distill', 'loss_feat_diffusion', 'loss_feat_ae',
                 'loss_logits_distill', 'loss_logits_diffusion', 'train/loss'):
        assert any(part in k for k in logged), (part, sorted(logged))
    # The teacher really is the cached one (frozen, loaded), not a random network.
    teacher_sd = runner.model.teacher.state_dict()
    for key, value in ckpt['state_dict'].items():
        torch.testing.assert_close(teacher_sd[key], value)
    assert len(curve) == 1


def test_table_gap_and_plot(demo, tmp_path):
    args = demo.parse_args(['--train-size', '1000', '--work-dir', str(tmp_path)])
    results = {
        'teacher': dict(top1=90.0, seconds=10, params=700000, curve=[[1, 90.0]], cached=True),
        'student': dict(top1=80.0, seconds=5, params=45000, curve=[[1, 70.0], [2, 80.0]]),
        'kd': dict(top1=85.0, seconds=6, params=45000, curve=[[1, 75.0], [2, 85.0]]),
    }
    table = demo.format_table(results, args)
    assert 'first 1000 of 60000' in table and '(cached)' in table
    assert '50%' in table.splitlines()[-3]  # KD closes half of the 10-point gap
    assert demo.gap_closed(95.0, 80.0, 90.0) == pytest.approx(150.0)
    png = demo.plot_curves(results, str(tmp_path / 'p.png'), args)
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('argv, message', [
    (['--train-size', '0'], '--train-size=0'),
    (['--train-size', '70000'], 'valid: 1..60000'),
    (['--val-size', '20000'], 'valid: 1..10000'),
    (['--student-epochs', '0'], '--student-epochs=0'),
])
def test_bad_arguments_are_named(demo, capsys, argv, message):
    with pytest.raises(SystemExit):
        demo.parse_args(argv)
    assert message in capsys.readouterr().err
