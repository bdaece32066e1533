"""tools/publish_model.py on tiny runs trained by tools/train.py, reloaded by the task APIs.

A tiny mmpretrain ResNet teacher, the student alone and the DiffKD student are trained for 2
iterations each (tests/data/configs, in-memory data registered as a dataset); the distilled run and
the teacher are published, validated with Papers with Code's ``model-index`` package, reloaded
with mmpretrain's ``get_model`` from another directory, and rendered by tools/model_zoo.py.
A RetinaNet (``init_detector``) and a PSPNet (``init_model``) distiller, with the teacher's metric
logged by ``TeacherValHook``, are published and reloaded too. Bad work dirs must fail with a
clear error and leave no release behind. The whole file: 15 s on the 2-core CPU machine
(``pytest -q tests/tools/test_publish_model.py``, 10 tests).
"""
import glob
import hashlib
import os
import os.path as osp
import re
import shutil
import sys
import textwrap

import modelindex
import pytest
import torch
import yaml
from helpers import load_tool
from tiny_models import CONFIG_DIR

from mmdiffkd.engine.publish import PublishError, read_scalars
from mmdiffkd.utils import CheckpointMismatchError

pytest.importorskip('mmcv.ops', reason='mmpretrain / mmdet / mmseg need mmcv with ops')

torch.set_num_threads(1)

DATA = '''
import torch
from mmengine.registry import DATASETS
from tiny_models import cls_dataset, det_dataset, seg_dataset


@DATASETS.register_module(force=True)
class PublishTinyData(torch.utils.data.Dataset):
    """tiny_models' in-memory data, buildable from a config (extra keys, e.g. lazy_init, are
    ignored: the inference APIs build the test dataset lazily for its metainfo)."""

    def __init__(self, kind, n=4, seed=0, **kwargs):
        self.data = dict(det=det_dataset, seg=seg_dataset, cls=cls_dataset)[kind](n=n, seed=seed)
        self.metainfo = self.data.metainfo

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]
'''

RUN = '''
_base_ = {base!r}
custom_imports = dict(imports=['tiny_models', 'publish_tiny_data'], allow_failed_imports=False)
loader = dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
              collate_fn=dict(type='pseudo_collate'))
train_dataloader = dict(dataset=dict(type='PublishTinyData', kind={kind!r}, n=4), **loader)
val_dataloader = dict(dataset=dict(type='PublishTinyData', kind={kind!r}, n={n_val}, seed=1),
                      **loader)
val_evaluator = {evaluator}
val_cfg = dict()
test_dataloader = dict(dataset={test_dataset}, **loader)
test_evaluator = val_evaluator
test_cfg = dict()
train_cfg = dict(by_epoch=False, max_iters=2, val_interval=2)
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                     logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
'''

DISTILL = '''
model = dict(teacher=dict(checkpoint={teacher!r}, allow_untrained=False))
'''

KINDS = {
    'cls': dict(evaluator="dict(type='Accuracy', topk=(1, ))", n_val=8,
                test_dataset=("dict(pipeline=[dict(type='LoadImageFromFile'), "
                              "dict(type='Resize', scale=(32, 32)), dict(type='PackInputs')])")),
    'det': dict(evaluator="dict(type='CocoMetric', metric='bbox', format_only=False)", n_val=2,
                test_dataset=(
                    "dict(type='CocoDataset', data_root='', ann_file='', test_mode=True, "
                    "metainfo=dict(classes=('c0', 'c1', 'c2')), pipeline=["
                    "dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64), "
                    "keep_ratio=True), dict(type='PackDetInputs', meta_keys=('img_id', "
                    "'img_path', 'ori_shape', 'img_shape', 'scale_factor'))])")),
    'seg': dict(evaluator="dict(type='IoUMetric', iou_metrics=['mIoU'])", n_val=2,
                test_dataset="dict(type='PublishTinyData', kind='seg', n=1)"),
}
SEG_PIPELINE = '''
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64),
                 keep_ratio=True), dict(type='PackSegInputs')]
'''


def train(root, name, base, kind, extra=''):
    """Train ``base`` + tiny data for 2 iterations with tools/train.py; (config, work dir)."""
    config = root / f'{name}.py'
    text = RUN.format(base=osp.join(CONFIG_DIR, base), kind=kind, **KINDS[kind])
    config.write_text(textwrap.dedent(text) + extra + (SEG_PIPELINE if kind == 'seg' else ''))
    work = root / 'work' / name
    load_tool('train').main([str(config), '--work-dir', str(work)])
    return str(config), str(work)


@pytest.fixture(scope='module')
def cls_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('publish_cls')
    (root / 'publish_tiny_data.py').write_text(DATA)
    sys.path.insert(0, str(root))
    try:
        runs = dict(root=root)
        runs['teacher'] = train(root, 'tiny-resnet18-wide', 'cls/tiny_resnet18_wide.py', 'cls')
        runs['student'] = train(root, 'tiny-resnet18', 'cls/tiny_resnet18.py', 'cls')
        teacher_ckpt = osp.join(runs['teacher'][1], 'iter_2.pth')
        runs['diffkd'] = train(root, 'diffkd_tiny-resnet18-wide_tiny-resnet18',
                               'distill/resnet18w_to_r18_diffkd.py', 'cls',
                               DISTILL.format(teacher=teacher_ckpt))
        yield runs
    finally:
        sys.path.remove(str(root))


def final_val(work_dir, key):
    """The last logged value of ``key`` in the work dir's (only) training run."""
    (scalars, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    return [r[key] for r in read_scalars(scalars) if key in r][-1]


def student_weights(checkpoint):
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    return {k[len('student.'):]: v for k, v in state.items() if k.startswith('student.')}


def assert_valid_model_index(path):
    index = modelindex.load(str(path))
    assert index.check(silent=True) == []
    return index


def assert_nothing_published(out):
    assert not osp.exists(out) or os.listdir(out) == [], os.listdir(out)


def test_publish_distilled_classifier_end_to_end(cls_runs, tmp_path, monkeypatch, capsys):
    config, work = cls_runs['diffkd']
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text('Models: []\n')
    out = tmp_path / 'release'
    result = load_tool('publish_model').main([
        work, '--out', str(out), '--config', config, '--dataset', 'Tiny Squares',
        '--collection', 'DiffKD', '--teacher-work-dir', cls_runs['teacher'][1],
        '--student-work-dir', cls_runs['student'][1], '--metafile', str(metafile),
        '--url-prefix', 'https://example.org/mmdiffkd/v0/'])
    name = 'diffkd_tiny-resnet18-wide_tiny-resnet18'
    assert f'published {out / name}' in capsys.readouterr().out

    # the release folder: checkpoint named <name>_<date>-<sha256[:8]>.pth, config, log, metafile
    folder = out / name
    (stamp, ) = [d for d in os.listdir(work) if re.match(r'^\d{8}_\d{6}$', d)]
    files = sorted(os.listdir(folder))
    (ckpt_name, ) = [f for f in files if f.endswith('.pth')]
    digest = hashlib.sha256((folder / ckpt_name).read_bytes()).hexdigest()
    assert ckpt_name == f'{name}_{stamp[:8]}-{digest[:8]}.pth'
    assert files == sorted([ckpt_name, f'{name}.py', f'{name}_{stamp}.log',
                            f'{name}_{stamp}.json', 'metafile.yml'])
    assert os.listdir(out) == [name]  # no staging folder left
    assert (folder / f'{name}_{stamp}.log').read_bytes() == \
        open(osp.join(work, stamp, f'{stamp}.log'), 'rb').read()

    # the checkpoint: the student only, exactly the distiller's student.* weights
    exported = torch.load(folder / ckpt_name, weights_only=True)
    assert set(exported) == {'state_dict', 'meta'}
    source = student_weights(osp.join(work, 'iter_2.pth'))
    assert exported['state_dict'].keys() == source.keys()
    assert all(torch.equal(exported['state_dict'][k], v) for k, v in source.items())
    assert {'optimizer', 'message_hub'} <= set(exported['meta']['mmdiffkd']['dropped'])

    # the config: standalone, the student's, no teacher, no machine path
    text = (folder / f'{name}.py').read_text()
    assert '_base_' not in text and 'Distiller' not in text and 'teacher' not in text
    assert 'work_dir' not in text and str(tmp_path) not in text

    # the entry: validates with model-index, metrics equal the logs', weights named by sha
    index = assert_valid_model_index(folder / 'metafile.yml')
    (model, ) = index.models
    entry = result['entry']
    assert model.name == name and model.in_collection == 'DiffKD'
    assert model.weights == f'https://example.org/mmdiffkd/v0/{ckpt_name}'
    assert model.config == f'https://example.org/mmdiffkd/v0/{name}.py'  # config not in repo
    (res, ) = model.results
    assert (res.task, res.dataset) == ('Image Classification', 'Tiny Squares')
    top1 = round(final_val(work, 'accuracy/top1'), 2)
    assert res.metrics == {'Top 1 Accuracy': top1}
    meta = entry['Metadata']
    assert meta['Teacher'] == {'Name': 'tiny_resnet18_wide',
                               'Config': 'tests/data/configs/cls/tiny_resnet18_wide.py',
                               'Metrics': {'Top 1 Accuracy': round(final_val(
                                   cls_runs['teacher'][1], 'accuracy/top1'), 2)}}
    assert meta['Student'] == {'Name': 'tiny_resnet18',
                               'Config': 'tests/data/configs/cls/tiny_resnet18.py',
                               'Metrics': {'Top 1 Accuracy': round(final_val(
                                   cls_runs['student'][1], 'accuracy/top1'), 2)}}
    assert sorted(meta['Distillation Losses']) == ['DiffKD', 'FitNets', 'KD']
    assert (meta['Iterations'], meta['Batch Size'], meta['Seed'], meta['SHA256']) == \
        (2, 2, 0, digest)
    assert 'Epochs' not in meta  # an iteration-based run
    assert 'Config Changes' not in meta, meta['Config Changes']  # trained as its config says
    assert yaml.safe_load(metafile.read_text())['Models'] == [entry]

    # reload with mmpretrain's own API, from another directory
    from mmpretrain import ImageClassificationInferencer, get_model
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    model = get_model(str(folder / f'{name}.py'), pretrained=str(folder / ckpt_name),
                      device='cpu')
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    inferencer = ImageClassificationInferencer(model=str(folder / f'{name}.py'),
                                               pretrained=str(folder / ckpt_name), device='cpu')
    image = torch.randint(0, 255, (32, 32, 3), dtype=torch.uint8).numpy()
    assert inferencer(image)[0]['pred_class'] in ('c0', 'c1', 'c2', 'c3')

    # the zoo page of an index importing this metafile: one row, gap closed from the entry
    (tmp_path / 'model-index.yml').write_text(yaml.safe_dump(dict(
        Import=['metafile.yml'],
        Collections=yaml.safe_load((folder / 'metafile.yml').read_text())['Collections'])))
    assert_valid_model_index(tmp_path / 'model-index.yml')
    page = load_tool('model_zoo').render(str(tmp_path / 'model-index.yml'))
    teacher, alone = meta['Teacher']['Metrics']['Top 1 Accuracy'], \
        meta['Student']['Metrics']['Top 1 Accuracy']
    gap = (f'{100 * (top1 - alone) / (teacher - alone):.0f} %' if teacher - alone >= 1 else
           f'n/a (gap {teacher - alone:.2f})')
    assert (f'| DiffKD + FitNets + KD | tiny_resnet18 ({alone} alone) | tiny_resnet18_wide '
            f'({teacher}) | {top1} | {gap} | `https://example.org/mmdiffkd/v0/{name}.py` |  | '
            f'[{ckpt_name}](https://example.org/mmdiffkd/v0/{ckpt_name}) | `{digest}` |') in page
    assert '## Image Classification' in page and '### Tiny Squares' in page


def test_publish_plain_teacher_run(cls_runs, tmp_path):
    config, work = cls_runs['teacher']
    from mmdiffkd.engine.publish import publish
    result = publish(work, str(tmp_path / 'release'), config=config, dataset='Tiny Squares')
    entry = result['entry']
    assert 'In Collection' not in entry and 'Teacher' not in entry['Metadata']
    assert entry['Name'] == 'tiny-resnet18-wide'
    assert entry['Weights'].startswith('tiny-resnet18-wide/tiny-resnet18-wide_')  # relative
    exported = torch.load(result['checkpoint'], weights_only=True)['state_dict']
    source = torch.load(osp.join(work, 'iter_2.pth'), weights_only=True)['state_dict']
    assert exported.keys() == source.keys()
    assert all(torch.equal(exported[k], v) for k, v in source.items())
    assert entry['Results'][0]['Metrics'] == {
        'Top 1 Accuracy': round(final_val(work, 'accuracy/top1'), 2)}
    assert_valid_model_index(osp.join(result['folder'], 'metafile.yml'))


def copy_work_dir(work, dst, skip=()):
    shutil.copytree(work, dst, ignore=lambda d, names: [n for n in names if n in skip or
                                                        any(re.match(p, n) for p in skip)])
    return str(dst)


def publish_args(cls_runs, work, out, *more):
    config, _ = cls_runs['diffkd']
    return [work, '--out', str(out), '--config', config, '--dataset', 'Tiny Squares',
            '--collection', 'DiffKD', '--teacher-work-dir', cls_runs['teacher'][1], *more]


def test_publish_refuses_a_work_dir_without_checkpoint(cls_runs, tmp_path):
    work = copy_work_dir(cls_runs['diffkd'][1], tmp_path / 'work',
                         skip=(r'.*\.pth$', 'last_checkpoint'))
    out = tmp_path / 'release'
    with pytest.raises(PublishError, match=r'has no checkpoint: no "last_checkpoint" file .* '
                                           r'and \.pth files \[\]; train with a CheckpointHook'):
        load_tool('publish_model').main(publish_args(cls_runs, work, out))
    assert_nothing_published(out)
    # .pth files but no pointer: the error lists them for --checkpoint
    work = copy_work_dir(cls_runs['diffkd'][1], tmp_path / 'work2', skip=('last_checkpoint', ))
    with pytest.raises(PublishError, match=r"pass --checkpoint with one of \['iter_1.pth', "
                                           r"'iter_2.pth'\]"):
        load_tool('publish_model').main(publish_args(cls_runs, work, out))
    assert_nothing_published(out)


def test_publish_refuses_a_work_dir_without_log(cls_runs, tmp_path):
    work = copy_work_dir(cls_runs['diffkd'][1], tmp_path / 'work', skip=(r'^\d{8}_\d{6}\.log$', ))
    out = tmp_path / 'release'
    with pytest.raises(PublishError, match=r'has no training log: expected a run folder .*'
                                           r'\(log: no, vis_data/scalars.json: yes\)'):
        load_tool('publish_model').main(publish_args(cls_runs, work, out))
    assert_nothing_published(out)


def test_publish_refuses_a_config_the_checkpoint_does_not_fit(cls_runs, tmp_path):
    out = tmp_path / 'release'
    wide = osp.join(CONFIG_DIR, 'cls', 'tiny_resnet18_wide.py')
    with pytest.raises(CheckpointMismatchError, match=r'(?s)shape mismatch.*Nothing was '
                                                      r'published.*--student-config'):
        load_tool('publish_model').main(publish_args(cls_runs, cls_runs['diffkd'][1], out,
                                                     '--student-config', wide))
    assert_nothing_published(out)  # the export failed inside the staging folder


def test_publish_refuses_a_metric_not_in_the_log(cls_runs, tmp_path):
    out = tmp_path / 'release'
    with pytest.raises(PublishError, match=r"logs no \['coco/bbox_mAP'\]; the validation keys "
                                           r"it logs are \['accuracy/top1'\]"):
        load_tool('publish_model').main(publish_args(cls_runs, cls_runs['diffkd'][1], out,
                                                     '--metric', 'coco/bbox_mAP'))
    assert_nothing_published(out)


def test_publish_refuses_a_checkpoint_the_metric_was_not_measured_on(cls_runs, tmp_path):
    out = tmp_path / 'release'
    work = cls_runs['diffkd'][1]
    with pytest.raises(PublishError, match=r'measured at iteration 2, but the checkpoint .*'
                                           r'iter_1.pth.* is from iteration 1'):
        load_tool('publish_model').main(publish_args(
            cls_runs, work, out, '--checkpoint', osp.join(work, 'iter_1.pth')))
    assert_nothing_published(out)


def test_publish_needs_the_teacher_metric_and_a_free_name(cls_runs, tmp_path):
    config, work = cls_runs['diffkd']
    out = tmp_path / 'release'
    args = [work, '--out', str(out), '--config', config, '--dataset', 'Tiny Squares',
            '--collection', 'DiffKD']
    with pytest.raises(PublishError, match=r'pass --teacher-work-dir .*TeacherValHook'):
        load_tool('publish_model').main(args)
    with pytest.raises(PublishError, match=r"losses \[.*'FitNets'.*\] belong to the "
                                           r"collections \[.*'DiffKD'.*\]; pass --collection"):
        load_tool('publish_model').main([
            work, '--out', str(out), '--config', config, '--dataset', 'Tiny Squares',
            '--teacher-work-dir', cls_runs['teacher'][1]])
    assert_nothing_published(out)
    metafile = tmp_path / 'metafile.yml'
    metafile.write_text('Models: []\n')
    first = load_tool('publish_model').main(publish_args(cls_runs, work, out,
                                                         '--metafile', str(metafile)))
    with pytest.raises(PublishError, match='exists; pass --overwrite'):
        load_tool('publish_model').main(publish_args(cls_runs, work, out))
    shutil.rmtree(first['folder'])
    with pytest.raises(PublishError, match=r"already has a model named .* pass --overwrite"):
        load_tool('publish_model').main(publish_args(cls_runs, work, out,
                                                     '--metafile', str(metafile)))
    assert_nothing_published(out)
    again = load_tool('publish_model').main(publish_args(cls_runs, work, out, '--overwrite',
                                                         '--metafile', str(metafile)))
    assert yaml.safe_load(metafile.read_text())['Models'] == [again['entry']]


def _publish_dense(tmp_path, kind, base, name):
    """Train a tiny distiller whose TeacherValHook logs the teacher's metric; publish it."""
    from mmengine.config import Config
    from tiny_models import teacher_checkpoint
    (tmp_path / 'publish_tiny_data.py').write_text(DATA)
    teacher = teacher_checkpoint(Config.fromfile(osp.join(CONFIG_DIR, base)),
                                 str(tmp_path / 'teacher.pth'))
    extra = DISTILL.format(teacher=teacher) + \
        "custom_hooks = [dict(type='mmdiffkd.TeacherValHook')]\n"
    config, work = train(tmp_path, name, base, kind, extra)
    result = load_tool('publish_model').main([work, '--out', str(tmp_path / 'release'),
                                              '--config', config, '--dataset', 'Tiny Boxes'])
    assert_valid_model_index(osp.join(result['folder'], 'metafile.yml'))
    return result, work


def test_publish_detector_and_init_detector(tmp_path, monkeypatch):
    sys.path.insert(0, str(tmp_path))
    try:
        result, work = _publish_dense(tmp_path, 'det', 'distill/retinanet_r18w_to_r18_diffkd.py',
                                      'diffkd_tiny-retinanet')
        entry = result['entry']
        assert entry['In Collection'] == 'DiffKD'  # DiffKD + MSE: MSE has no collection
        (res, ) = entry['Results']
        assert res['Task'] == 'Object Detection'
        assert res['Metrics'] == {'box AP': round(100 * final_val(work, 'coco/bbox_mAP'), 2)}
        assert entry['Metadata']['Teacher']['Metrics'] == {
            'box AP': round(100 * final_val(work, 'teacher/coco/bbox_mAP'), 2)}
        from mmdet.apis import inference_detector, init_detector
        monkeypatch.chdir(tmp_path / 'work')
        model = init_detector(result['config'], result['checkpoint'], device='cpu')
        source = student_weights(osp.join(work, 'iter_2.pth'))
        assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
        assert model.dataset_meta['classes'] == ('c0', 'c1', 'c2')
        image = torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8).numpy()
        assert inference_detector(model, image).pred_instances.bboxes.shape[-1] == 4
    finally:
        sys.path.remove(str(tmp_path))


def test_publish_segmentor_and_init_model(tmp_path, monkeypatch):
    sys.path.insert(0, str(tmp_path))
    try:
        result, work = _publish_dense(tmp_path, 'seg', 'distill/pspnet_r18w_to_r18_diffkd.py',
                                      'diffkd_tiny-pspnet')
        (res, ) = result['entry']['Results']
        assert res['Task'] == 'Semantic Segmentation'
        assert res['Metrics'] == {'mIoU': round(final_val(work, 'mIoU'), 2)}
        from mmseg.apis import inference_model, init_model
        monkeypatch.chdir(tmp_path / 'work')
        model = init_model(result['config'], result['checkpoint'], device='cpu')
        source = student_weights(osp.join(work, 'iter_2.pth'))
        assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
        image = torch.randint(0, 255, (64, 64, 3), dtype=torch.uint8).numpy()
        assert inference_model(model, image).pred_sem_seg.data.shape == (1, 64, 64)
    finally:
        sys.path.remove(str(tmp_path))


def test_repo_path_names_configs_of_another_checkout_by_their_place_here(tmp_path):
    """A run trained from another checkout (a worktree) names its teacher config by an absolute
    path outside this repository: the metafile gets this repository's config of that name."""
    from mmdiffkd.engine.publish import repo_path
    repo = tmp_path / 'repo'
    (repo / 'configs' / 'fmnist').mkdir(parents=True)
    (repo / 'configs' / 'fmnist' / 'teacher_cfg.py').write_text('model = None\n')
    other = tmp_path / 'other' / 'configs' / 'fmnist' / '_base_' / '..' / 'teacher_cfg.py'
    assert repo_path(str(other), str(repo)) == osp.join('configs', 'fmnist', 'teacher_cfg.py')
    # no such config here: only the file name, never a path of the publishing machine
    assert repo_path(str(tmp_path / 'x' / 'absent.py'), str(repo)) == 'absent.py'
    assert repo_path('mmdet::retinanet/r.py', str(repo)) == 'mmdet::retinanet/r.py'


def test_config_changes_name_what_the_run_changed_and_nothing_else(tmp_path):
    """The entry records the --cfg-options a run was trained with (a shorter schedule, another
    loss weight, a data subset), not the paths of the machine, the seed (its own field) or
    tools/train.py's NaN-guarded optim wrapper."""
    from mmengine.config import Config

    from mmdiffkd.engine.publish import config_changes
    config = tmp_path / 'declared.py'
    config.write_text(textwrap.dedent('''
        model = dict(type='mmdiffkd.Distiller', teacher=dict(checkpoint='work_dirs/t/e.pth'),
                     distill_losses=dict(fpn=dict(loss=dict(type='DiffKD'), weight=15.0)))
        train_dataloader = dict(batch_size=8, num_workers=2,
                                dataset=dict(data_root='data/x/', ann_file='train.json'))
        train_cfg = dict(max_epochs=6, val_interval=1)
        optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01))
        param_scheduler = [dict(type='LinearLR', end=100), dict(type='MultiStepLR',
                                                                milestones=[4, 5])]
        randomness = dict(seed=None)
        '''))
    run = Config.fromfile(str(config))
    assert config_changes(run, str(config)) == {}
    run.model.teacher.checkpoint = '/abs/machine/path/epoch_6.pth'
    run.train_dataloader.dataset.data_root = '/abs/machine/data/x/'
    run.train_dataloader.num_workers = 0
    run.optim_wrapper.type = 'mmdiffkd.FiniteLossOptimWrapper'
    run.randomness.seed = 1
    run.work_dir = '/abs/work'
    assert config_changes(run, str(config)) == {}
    run.train_cfg.max_epochs = 3
    run.param_scheduler[1].milestones = [2]
    run.model.distill_losses.fpn.weight = 1.0
    run.model.distill_losses.fpn.loss.distill_warmup_iters = 0
    run.train_dataloader.dataset.indices = 1000
    assert config_changes(run, str(config)) == {
        'model.distill_losses.fpn.loss.distill_warmup_iters': 0,
        'model.distill_losses.fpn.weight': 1.0,
        'param_scheduler.1.milestones': [2],
        'train_cfg.max_epochs': 3,
        'train_dataloader.dataset.indices': 1000}
    run.optim_wrapper.type = 'AmpOptimWrapper'  # a real change of the optimizer step
    assert config_changes(run, str(config))['optim_wrapper.type'] == 'AmpOptimWrapper'
