"""tools/train.py, tools/test.py, tools/export_student.py and the launch scripts, end to end.

A complete toy distillation experiment (config file, registered dataset and metric; torch +
MMEngine only) is written to a temporary folder and run through the tools in-process, as a user
would from the shell (``helpers.write_experiment``).
"""
import os
import os.path as osp
import pickle
import subprocess
import sys

import pytest
import torch
from helpers import REPO, load_tool, write_experiment

import mmdiffkd  # noqa: F401  (torch.load of MMEngine checkpoints: weights_only, the allow-list)


@pytest.fixture(scope='module')
def experiment(tmp_path_factory):
    directory = tmp_path_factory.mktemp('toy_experiment')
    sys.path.insert(0, str(directory))  # custom_imports=['toy_data']
    yield directory, write_experiment(directory)
    sys.path.remove(str(directory))


@pytest.fixture(scope='module')
def trained(experiment):
    """tools/train.py CONFIG --work-dir W (2 iterations, validation at the end)."""
    directory, config = experiment
    work_dir = directory / 'work'
    load_tool('train').main([config, '--work-dir', str(work_dir)])
    return config, work_dir


def test_train_writes_checkpoint_without_teacher(trained):
    config, work_dir = trained
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    keys = list(ckpt['state_dict'])
    assert any(k.startswith('student.') for k in keys)
    assert any(k.startswith('distill_losses.feat.') for k in keys)  # FitNets' regressor
    assert not any(k.startswith('teacher.') for k in keys)
    assert ckpt['meta']['iter'] == 2 and ckpt['meta']['dataset_meta']['classes'][0] == 'a'
    assert (work_dir / 'last_checkpoint').read_text().strip().endswith('iter_2.pth')


def test_resume_auto_and_explicit(trained, tmp_path):
    config, work_dir = trained
    train = load_tool('train')
    # --resume (auto): the latest checkpoint of the work dir, then 2 more iterations
    train.main([config, '--work-dir', str(work_dir), '--resume',
                '--cfg-options', 'train_cfg.max_iters=4'])
    resumed = torch.load(work_dir / 'iter_4.pth', weights_only=True)
    assert resumed['meta']['iter'] == 4
    assert len(resumed['message_hub']['log_scalars']['train/loss'].data[0]) == 4
    # --resume PATH into a fresh work dir
    other = tmp_path / 'other'
    train.main([config, '--work-dir', str(other), '--resume', str(work_dir / 'iter_2.pth'),
                '--cfg-options', 'train_cfg.max_iters=3', 'default_hooks.checkpoint.interval=1'])
    assert sorted(os.listdir(other)).count('iter_3.pth') == 1
    assert not (other / 'iter_1.pth').exists()  # started at 2, not at 0


def test_train_runs_a_plain_config(experiment, tmp_path):
    """No distiller: the tools are the OpenMMLab ones for any task config."""
    directory, _ = experiment
    plain = directory / 'toy_plain.py'
    plain.write_text("_base_ = './toy_distill.py'\n"
                     "model = dict(_delete_=True, type='ToyClassifier', width=8,\n"
                     "             data_preprocessor={{_base_.preprocessor}})\n")
    load_tool('train').main([str(plain), '--work-dir', str(tmp_path)])
    keys = torch.load(tmp_path / 'iter_2.pth', weights_only=True)['state_dict'].keys()
    assert 'stem.0.weight' in keys and not any(k.startswith('student.') for k in keys)


def test_bad_arguments(trained, tmp_path):
    config, _ = trained
    train = load_tool('train')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        train.main([config, '--resume', str(tmp_path / 'nope.pth')])
    with pytest.raises(SystemExit):
        train.parse_args([config, '--launcher', 'horovod'])
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='--amp needs a CUDA device'):
            train.main([config, '--amp'])


def test_bad_input_is_refused_before_anything_is_written(experiment, tmp_path):
    directory, config = experiment
    train = load_tool('train')
    work = tmp_path / 'work'
    with pytest.raises(FileNotFoundError, match=r"toy_distil\.py' does not exist\. Did you "
                                                r"mean .*toy_distill\.py'"):
        train.main([str(directory / 'toy_distil.py'), '--work-dir', str(work)])
    with pytest.raises(FileNotFoundError, match="its directory .* does not exist"):
        train.main([str(tmp_path / 'no' / 'cfg.py'), '--work-dir', str(work)])
    with pytest.raises(KeyError, match=r"has no 'max_iter' under train_cfg\. Did you mean "
                                       r"'train_cfg\.max_iters'\?"):
        train.main([config, '--work-dir', str(work), '--cfg-options', 'train_cfg.max_iter=9'])
    with pytest.raises(KeyError, match="has no 'trian_cfg' under the top level. Did you mean "
                                       "'train_cfg'"):
        train.main([config, '--work-dir', str(work), '--cfg-options', 'trian_cfg.max_iters=9'])
    with pytest.raises(KeyError, match="has no 'fpn' under model.distill_losses.*Only the last"):
        train.main([config, '--work-dir', str(work), '--cfg-options',
                    '+model.distill_losses.fpn.weight=2'])  # + adds a last part only
    with pytest.raises(KeyError, match=r"write it with a leading \+: \+train_cfg.max_epoch="):
        train.main([config, '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epoch=9'])
    assert not work.exists()
    afile = tmp_path / 'afile'
    afile.write_text('not a directory')
    for bad in (afile, afile / 'sub'):
        with pytest.raises(NotADirectoryError, match='Work dir .* not a directory'):
            train.main([config, '--work-dir', str(bad)])
    assert afile.read_text() == 'not a directory'
    assert sorted(os.listdir(tmp_path)) == ['afile']
    # what does exist is accepted: nested keys, list indices, top-level Runner arguments
    cfg = train.build_cfg(train.parse_args([
        config, '--work-dir', str(work), '--cfg-options', 'train_cfg.max_iters=3',
        'param_scheduler.0.gamma=0.5', 'randomness.seed=3', 'resume=False']))
    assert cfg.train_cfg.max_iters == 3 and cfg.param_scheduler[0].gamma == 0.5
    assert cfg.randomness.seed == 3 and not work.exists()
    # a new key, asked for explicitly with a leading +, is added (the + is not kept)
    cfg = train.build_cfg(train.parse_args([
        config, '--work-dir', str(work), '--cfg-options', '+train_cfg.val_begin=2',
        '+train_cfg.max_iters=4']))
    assert cfg.train_cfg.val_begin == 2 and cfg.train_cfg.max_iters == 4
    assert '+train_cfg' not in cfg and not work.exists()


def test_test_tool_evaluates_and_dumps(trained, tmp_path):
    config, work_dir = trained
    out = tmp_path / 'preds.pkl'
    metrics = load_tool('test').main([config, str(work_dir / 'iter_2.pth'),
                                      '--work-dir', str(tmp_path / 'test'), '--out', str(out)])
    assert set(metrics) == {'toy/accuracy'} and 0 <= metrics['toy/accuracy'] <= 100
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 4 and 'pred_label' in predictions[0]
    with pytest.raises(ValueError, match='must end with .pkl'):
        load_tool('test').main([config, str(work_dir / 'iter_2.pth'), '--out', 'x.json'])
    with pytest.raises(KeyError, match='default_hooks.visualization'):
        load_tool('test').main([config, str(work_dir / 'iter_2.pth'), '--show-dir', 'vis'])


def test_test_tool_predictions_are_the_students(trained, tmp_path):
    """The test loop of the distiller checkpoint == the student alone with the same weights."""
    config, work_dir = trained
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    student_sd = {k[len('student.'):]: v for k, v in ckpt['state_dict'].items()
                  if k.startswith('student.')}
    plain = tmp_path / 'student.pth'
    torch.save({'state_dict': student_sd}, plain)
    cfg.model = cfg.model.student
    cfg.model._scope_ = 'mmengine'
    cfg.load_from = str(plain)
    cfg.work_dir = str(tmp_path / 'plain')
    plain_metrics = Runner.from_cfg(cfg).test()
    distilled = load_tool('test').main([config, str(work_dir / 'iter_2.pth'),
                                        '--work-dir', str(tmp_path / 'distilled')])
    assert plain_metrics == distilled


def test_prepare_launch_without_cuda():
    from mmengine.config import Config

    from mmdiffkd.engine.launch import prepare_launch
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    prepare_launch(cfg, 'none', cuda_available=False)
    assert cfg.env_cfg.dist_cfg.backend == 'nccl' and 'model_wrapper_cfg' not in cfg
    prepare_launch(cfg, 'slurm', cuda_available=False)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.type == 'mmdiffkd.CPUDistributedDataParallel'
    gpu = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    prepare_launch(gpu, 'slurm', cuda_available=True)
    assert gpu.env_cfg.dist_cfg.backend == 'nccl' and gpu.launcher == 'slurm'
    with pytest.raises(ValueError, match="valid: \\('none'"):
        prepare_launch(gpu, 'horovod')


@pytest.mark.parametrize('script,args,tool', [
    ('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd', '--amp'], 'train.py'),
    ('slurm_test.sh', ['part', 'job', 'cfg.py', 'ck.pth', '--out', 'r.pkl'], 'test.py'),
])
def test_slurm_scripts_call_srun(tmp_path, script, args, tool):
    """A fake ``srun`` on PATH records its arguments."""
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    fake.chmod(0o755)
    log = tmp_path / 'srun.log'
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', SRUN_LOG=str(log),
               GPUS='16', GPUS_PER_NODE='8', SRUN_ARGS='--quotatype=auto --time=1')
    subprocess.run(['bash', osp.join(REPO, 'tools', script)] + args, env=env, check=True)
    argv = log.read_text().split('\n')
    assert argv[:2] == ['-p', 'part'] and '--job-name=job' in argv
    assert '--ntasks=16' in argv and '--gres=gpu:8' in argv and '--ntasks-per-node=8' in argv
    assert '--quotatype=auto' in argv and '--time=1' in argv
    assert argv[argv.index('-u') + 1].endswith(f'tools/{tool}')
    assert '--launcher=slurm' in argv and args[-1] in argv and args[2] in argv
    if tool == 'train.py':
        assert '--work-dir=wd' in argv
    bad = subprocess.run(['bash', osp.join(REPO, 'tools', script), 'part'], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and 'usage' in bad.stderr


def test_show_dir_turns_on_each_task_visualization_hook():
    from mmengine.config import Config
    test = load_tool('test')
    for hook, switch, where in (('DetVisualizationHook', 'draw', 'test_out_dir'),
                                ('mmseg.SegVisualizationHook', 'draw', None),
                                ('VisualizationHook', 'enable', 'out_dir')):
        cfg = Config(dict(default_hooks=dict(visualization=dict(type=hook))))
        test.enable_show_dir(cfg, 'vis')
        assert cfg.default_hooks.visualization[switch] is True
        if where is None:
            assert cfg.visualizer.save_dir == 'vis'
        else:
            assert cfg.default_hooks.visualization[where] == 'vis'
    with pytest.raises(ValueError, match="unknown visualization hook 'MyHook'"):
        test.enable_show_dir(Config(dict(default_hooks=dict(visualization=dict(
            type='MyHook')))), 'vis')


def test_amp_switches_the_optim_wrapper_on_gpu_machines():
    from mmengine.config import Config

    from mmdiffkd.engine.launch import setup_amp
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1))))
    setup_amp(cfg, cuda_available=True)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    custom = Config(dict(optim_wrapper=dict(type='MyWrapper', optimizer=dict(type='SGD'))))
    with pytest.raises(ValueError, match="'MyWrapper'"):
        setup_amp(custom, cuda_available=True)
    with pytest.raises(RuntimeError, match='needs a CUDA device'):
        setup_amp(cfg, cuda_available=False)
