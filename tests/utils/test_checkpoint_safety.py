"""Checkpoints load only with weights_only=True: planted code never runs, MMEngine's own load."""
import functools
import http.server
import os
import pickletools
import threading
import zipfile
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.runner.checkpoint import load_checkpoint as mmengine_load_checkpoint
from mmengine.runner.checkpoint import load_from_http

from mmdiffkd.utils import (CheckpointMismatchError, UnsafeCheckpointError,
                            install_safe_loaders, load_checkpoint_file, load_checkpoint_safe,
                            mmengine_checkpoint_globals)
from mmdiffkd.utils.checkpoint import load_from_http_safe, load_from_local_safe



class TouchOnLoad:
    """Unpickling this runs ``open(marker, 'w')``: the file appears if code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


class ShellOnLoad:
    """Unpickling this runs ``os.system('touch marker')``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class GetattrOnLoad:
    """Uses ``builtins.getattr`` (allowed only as MMEngine's restricted stand-in)."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def plant(tmp_path, payload_cls):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': nn.Linear(2, 2).state_dict(),
                'meta': {'note': payload_cls(marker)}}, path)
    assert path.exists() and not marker.exists()
    return path, marker


@pytest.mark.parametrize('payload', [TouchOnLoad, ShellOnLoad])
def test_planted_code_never_runs(tmp_path, payload):
    path, marker = plant(tmp_path, payload)
    loaders = {
        'load_checkpoint_file': lambda: load_checkpoint_file(str(path)),
        'load_checkpoint_safe': lambda: load_checkpoint_safe(nn.Linear(2, 2), str(path)),
        'mmengine.load_checkpoint': lambda: mmengine_load_checkpoint(nn.Linear(2, 2), str(path)),
        'CheckpointLoader': lambda: CheckpointLoader.load_checkpoint(str(path)),
    }
    for name, load in loaders.items():
        with pytest.raises(UnsafeCheckpointError, match='Refused to load checkpoint'):
            load()
        assert not marker.exists(), f'{name} ran code from the checkpoint'
    # control: the plant is real, an unrestricted load does run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_getattr_stand_in_refuses_anything_but_statistics(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'x': GetattrOnLoad()}, path)
    with pytest.raises(UnsafeCheckpointError, match='HistoryBuffer statistics methods'):
        load_checkpoint_file(str(path))


def test_runner_checkpoint_loads_before_any_history_buffer_exists(runner_checkpoint,
                                                                  monkeypatch):
    """In a fresh process (export, test) no HistoryBuffer was created yet, and MMEngine
    registers its statistics methods lazily, at the first ``HistoryBuffer()``."""
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    checkpoint = load_checkpoint_file(str(runner_checkpoint))
    assert checkpoint['message_hub']['log_scalars']['train/loss'].mean() > 0


def test_every_mmengine_scheme_uses_the_safe_loaders():
    assert CheckpointLoader._get_checkpoint_loader('/a/b.pth') is load_from_local_safe
    assert CheckpointLoader._get_checkpoint_loader('https://x.org/a.pth') is load_from_http_safe
    for prefix in ('torchvision://resnet50', 'open-mmlab://resnet50_caffe', 'mmcls://resnet50',
                   's3://bucket/a.pth'):
        loader = CheckpointLoader._get_checkpoint_loader(prefix)
        assert loader.__module__ == 'mmdiffkd.utils.checkpoint', prefix


def test_install_safe_loaders_is_idempotent_and_puts_back_a_replaced_scheme(tmp_path):
    before = dict(CheckpointLoader._schemes)
    install_safe_loaders()
    install_safe_loaders()
    assert CheckpointLoader._schemes == before
    # something re-registers MMEngine's own URL loader (weights_only=False) ...
    CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http, force=True)
    try:
        # ... our own entry (load_checkpoint_file, the distiller, the tools) puts ours back
        with pytest.raises(FileNotFoundError):
            load_checkpoint_file(str(tmp_path / 'missing.pth'))
        assert CheckpointLoader._get_checkpoint_loader('https://x.org/a.pth') \
            is load_from_http_safe
    finally:
        install_safe_loaders()
    assert CheckpointLoader._schemes == before


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


def test_url_checkpoint_is_loaded_weights_only(tmp_path, monkeypatch):
    """MMEngine would load a URL with weights_only=False; ours refuses the plant."""
    serve = tmp_path / 'serve'
    serve.mkdir()
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': nn.Linear(2, 2).state_dict(), 'meta': TouchOnLoad(marker)},
               serve / 'evil.pth')
    good = nn.Linear(2, 2)
    torch.save({'state_dict': good.state_dict()}, serve / 'good.pth')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))  # the download cache
    handler = functools.partial(_QuietHandler, directory=str(serve))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f'http://127.0.0.1:{server.server_address[1]}'
        model = nn.Linear(2, 2)
        load_checkpoint_safe(model, f'{base}/good.pth')
        assert torch.equal(model.weight, good.weight)
        with pytest.raises(UnsafeCheckpointError):
            mmengine_load_checkpoint(nn.Linear(2, 2), f'{base}/evil.pth')
        assert not marker.exists()
    finally:
        server.shutdown()
        server.server_close()


# ---- MMEngine's own checkpoints ---------------------------------------------------------------

class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, inputs, target=None, mode='tensor'):
        out = self.net(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - target)**2).mean())
        return out


class ToyData(torch.utils.data.Dataset):
    metainfo = dict(classes=('a', 'b'), palette=[(1, 2, 3), (4, 5, 6)])

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), target=torch.tensor(float(i % 2)))


def pickled_globals(path):
    """Every ``module.name`` a torch checkpoint's pickle refers to (not only the unsafe ones)."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith('data.pkl')))
    names = set()
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == 'GLOBAL':
            module, name = arg.split(' ')
            names.add(f"{'builtins' if module == '__builtin__' else module}.{name}")
    torch_defaults = ('torch.', 'collections.', '_codecs.')
    return {n for n in names if not n.startswith(torch_defaults)}


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('runner')
    runner = Runner(
        model=ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyData(), batch_size=4,
                              collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.5, by_epoch=False, end=2)],
        train_cfg=dict(by_epoch=False, max_iters=3),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False)),
        randomness=dict(seed=0), default_scope='mmengine',
        experiment_name='checkpoint_safety')
    runner.train()
    return work_dir / 'iter_3.pth'


def test_allow_list_covers_exactly_what_the_runner_writes(runner_checkpoint):
    written = pickled_globals(runner_checkpoint)
    allowed = {name for _, name in mmengine_checkpoint_globals()}
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in written
    assert written <= allowed, f'not allowed: {written - allowed}'
    # the allow-list holds nothing beyond the globals above plus numpy's dtype classes and the
    # numpy>=2 spelling of the same functions
    extra = {n for n in allowed - written
             if not n.startswith(('numpy.dtypes.', 'numpy._core.', 'numpy.core.'))}
    assert extra == set(), extra


def test_runner_checkpoint_loads_weights_only(runner_checkpoint):
    checkpoint = torch.load(runner_checkpoint, weights_only=True)  # the registered allow-list
    buffer = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer) and len(buffer.data[0]) == 3
    assert checkpoint['meta']['dataset_meta']['classes'] == ('a', 'b')
    model = ToyModel()
    load_checkpoint_safe(model, str(runner_checkpoint))
    assert torch.equal(model.state_dict()['net.0.weight'],
                       checkpoint['state_dict']['net.0.weight'])


# ---- errors -----------------------------------------------------------------------------------

def test_architecture_mismatch_names_keys_and_shapes(tmp_path):
    path = tmp_path / 'other.pth'
    other = nn.Module()
    other.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1), nn.Linear(1, 1))
    torch.save({'state_dict': other.state_dict()}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint_safe(ToyModel(), str(path))
    err = info.value
    assert 'net.0.weight: checkpoint [16, 4] vs model [8, 4]' in str(err)
    assert 'net.1.running_mean' in err.missing_keys and 'net.2.weight' in err.unexpected_keys
    assert 'unexpected key(s)' in str(err) and 'missing key(s)' in str(err)


def test_non_strict_loads_what_fits(tmp_path):
    path = tmp_path / 'partial.pth'
    src = ToyModel()
    sd = OrderedDict((k, v) for k, v in src.state_dict().items() if not k.startswith('net.3'))
    sd['net.0.bias'] = torch.zeros(3)
    torch.save({'model': sd}, path)  # timm / DeiT style 'model' entry
    dst = ToyModel()
    before = dst.state_dict()['net.0.bias'].clone()
    load_checkpoint_safe(dst, str(path), strict=False)
    assert torch.equal(dst.state_dict()['net.0.weight'], src.state_dict()['net.0.weight'])
    assert torch.equal(dst.state_dict()['net.0.bias'], before)  # mis-shaped: skipped


def test_prefix_hint_and_revise_keys(tmp_path):
    path = tmp_path / 'prefixed.pth'
    src = ToyModel()
    torch.save({f'student.{k}': v for k, v in src.state_dict().items()}, path)  # bare dict
    with pytest.raises(CheckpointMismatchError, match=r"prefix 'student\.'"):
        load_checkpoint_safe(ToyModel(), str(path))
    dst = ToyModel()
    load_checkpoint_safe(dst, str(path), revise_keys=[(r'^student\.', '')])
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(),
                                                 dst.state_dict().values()))


def test_missing_file_and_bad_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_safe(ToyModel(), str(tmp_path / 'nope.pth'))
    with pytest.raises(TypeError, match='path or URL'):
        load_checkpoint_file(None)
    path = tmp_path / 'noweights.pth'
    torch.save({'meta': {'a': 1}}, path)
    with pytest.raises(KeyError, match='No weights found'):
        load_checkpoint_safe(ToyModel(), str(path))
