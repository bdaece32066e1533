"""Recorders: path checks, outputs and inputs, index / call selection, clearing, early stop."""
import gc

import pytest
import torch
import torch.nn as nn
from helpers import count_hooks

from mmdiffkd.models.distillers.recorders import RecorderSet, StopForward, resolve_module, select


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.ModuleDict(dict(layer1=nn.Conv2d(3, 4, 1), layer2=nn.Conv2d(4, 8, 1)))
        self.neck = Pyramid()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x1 = self.backbone['layer1'](x)
        x2 = self.backbone['layer2'](x1)
        feats = self.neck(x2)
        return self.head(feats[0].mean((2, 3)))


class Pyramid(nn.Module):
    def forward(self, x):
        return (x, x[..., ::2, ::2], {'p6': x[..., ::4, ::4]})


def test_wrong_path_lists_close_and_sibling_paths():
    with pytest.raises(KeyError) as err:
        resolve_module(Net(), 'backbone.layer3', 'student')
    msg = str(err.value)
    assert 'student has no module "backbone.layer3"' in msg
    assert 'backbone.layer1' in msg and 'backbone.layer2' in msg
    with pytest.raises(KeyError, match='neck'):
        resolve_module(Net(), 'nek')
    with pytest.raises(ValueError, match='non-empty'):
        resolve_module(Net(), '')


def test_output_input_index_and_clear():
    net = Net()
    rec = RecorderSet(net, 'student')
    rec.add('neck')
    rec.add('head', source='input')
    x = torch.randn(2, 3, 8, 8)
    with rec.recording():
        net(x)
    assert rec.get('neck', index=1).shape == (2, 8, 4, 4)
    assert rec.get('neck', index=[2, 'p6']).shape == (2, 8, 2, 2)  # nested index
    assert rec.get('head', source='input').shape == (2, 8)
    with pytest.raises(IndexError, match=r'an int in \[0, 3\)'):
        rec.get('neck', index=5)
    with pytest.raises(IndexError, match="keys \\['p6'\\]"):
        rec.get('neck', index=[2, 'p7'])
    # a new step starts empty; outside a recording block nothing is kept
    net(x)
    with rec.recording():
        pass
    assert rec.records == {}
    with pytest.raises(RuntimeError, match='did not run'):
        rec.get('neck')


def test_repeated_calls_need_call():
    shared = nn.Conv2d(3, 3, 1)  # like a head conv shared by every FPN level
    holder = nn.Module()
    holder.conv = shared
    rec = RecorderSet(holder, 'head')
    rec.add('conv')
    with rec.recording():
        for _ in range(3):
            shared(torch.randn(1, 3, 4, 4))
    with pytest.raises(RuntimeError, match='ran 3 times'):
        rec.get('conv')
    assert rec.get('conv', call=2).shape == (1, 3, 4, 4)
    with pytest.raises(IndexError, match='ran 3 times'):
        rec.get('conv', call=3)


def test_stop_early_skips_rest_of_forward():
    net = Net()
    ran = []
    net.head.register_forward_hook(lambda *a: ran.append('head'))
    rec = RecorderSet(net)
    rec.add('backbone.layer2')
    assert rec.run(lambda: net(torch.randn(1, 3, 4, 4)), stop_early=True) is None
    assert ran == [] and rec.get('backbone.layer2').shape == (1, 8, 4, 4)
    out = rec.run(lambda: net(torch.randn(1, 3, 4, 4)), stop_early=False)
    assert ran == ['head'] and out.shape == (1, 2)
    assert issubclass(StopForward, Exception)


def test_hooks_shared_per_module_and_removed():
    net = Net()
    rec = RecorderSet(net)
    rec.add('neck')
    rec.add('neck')  # a second loss reading the same module adds no hook
    rec.add('neck', source='input')
    assert rec.num_hooks == 2 and count_hooks(net) == 2
    rec.remove()
    assert count_hooks(net) == 0
    del rec
    gc.collect()


def test_select_on_plain_tensor():
    t = torch.zeros(2, 3)
    assert select(t, None) is t
    with pytest.raises(IndexError):
        select(3.0, 1)
    # index=0 on a tensor would slice the batch axis: refused, naming the fix
    with pytest.raises(IndexError, match=r'tensor of shape \(2, 3\).*would slice the batch'):
        select(t, 0, 'student "head"')
    with pytest.raises(IndexError, match='Remove index'):
        select((t, t), (0, 1))


def test_in_place_change_after_record_is_an_error():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
    rec = RecorderSet(net)
    rec.add('1')  # BatchNorm output, then overwritten by the in-place ReLU
    rec.add('2')
    with rec.recording():
        net(torch.randn(2, 3, 4, 4))
    with pytest.raises(RuntimeError, match='changed in place'):
        rec.get('1')
    assert (rec.get('2') >= 0).all()
