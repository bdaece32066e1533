"""Each loss, used alone, teaches a small student something real (Fashion-MNIST, CPU, slow).

A small CNN teacher is trained on 4096 Fashion-MNIST images; a narrower student is then trained
with one distillation loss and nothing else. Logit losses must lift the student's test accuracy
far above chance; feature losses must cut their own value substantially. Run with
``pytest -m slow tests/e2e/test_losses_train.py``.
"""
import gzip
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import mmdiffkd.models.losses  # noqa: F401
from mmdiffkd.registry import MODELS

ROOT = '/usr/share/datasets/fashion-mnist'
pytestmark = pytest.mark.slow


def read_idx(name, offset):
    with gzip.open(os.path.join(ROOT, name)) as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(split, n):
    prefix = 'train' if split == 'train' else 't10k'
    x = read_idx(f'{prefix}-images-idx3-ubyte.gz', 16).reshape(-1, 1, 28, 28)[:n]
    y = read_idx(f'{prefix}-labels-idx1-ubyte.gz', 8)[:n]
    x = torch.from_numpy(x.astype(np.float32) / 255.0 - 0.5) / 0.35
    return x, torch.from_numpy(y.astype(np.int64))


class Net(nn.Module):
    """conv(w) - conv(2w), stride 2 each -> 'feat' map (2w, 7, 7) -> 'vec' (4w) -> fc logits."""

    def __init__(self, width):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, 2, 1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, 2, 1)
        self.hidden = nn.Linear(2 * width * 49, 4 * width)
        self.fc = nn.Linear(4 * width, 10)

    def forward(self, x):
        feat = self.conv2(F.relu(self.conv1(x)))
        vec = F.relu(self.hidden(F.relu(feat).flatten(1)))
        return feat, vec, self.fc(vec)


@pytest.fixture(scope='module')
def data():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: one thread is faster on a shared 2-core machine
    yield make_data()
    torch.set_num_threads(threads)


def make_data():
    torch.manual_seed(0)
    x, y = load('train', 4096)
    xt, yt = load('test', 1000)
    teacher = Net(16)
    opt = torch.optim.Adam(teacher.parameters(), 3e-3)
    for step in range(300):
        idx = torch.randint(0, len(x), (64,))
        loss = F.cross_entropy(teacher(x[idx])[2], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    teacher.eval().requires_grad_(False)
    acc = (teacher(xt)[2].argmax(1) == yt).float().mean().item()
    print(f"teacher test accuracy {acc:.3f}")
    assert acc > 0.75, f"teacher accuracy {acc:.3f}"
    return x, y, xt, yt, teacher


# name -> (loss cfg, which output: 0 feature map, 1 pooled, 2 logits)
LOGIT = {
    'KD': (dict(type='KD', tau=4.0), 2),
    'DIST': (dict(type='DIST'), 2),
    'DKD': (dict(type='DKD'), 2),
    'AEKT': (dict(type='AEKT', student_channels=10, teacher_channels=10), 2),
}
FEATURE = {
    'FitNets': (dict(type='FitNets', student_channels=16, teacher_channels=32), 0),
    'CWD': (dict(type='CWD', student_channels=16, teacher_channels=32), 0),
    'VkD': (dict(type='VkD', student_channels=32, teacher_channels=64), 1),
    'VkD-dense': (dict(type='VkD', student_channels=16, teacher_channels=32,
                       normalize='channel'), 0),
    'RTK': (dict(type='RTK', student_channels=16, teacher_channels=32, embed_channels=32), 0),
}


def train_student(data, cfg, which, steps=200):
    x, y, xt, yt, teacher = data
    torch.manual_seed(1)
    student = Net(8)
    loss_fn = MODELS.build(cfg)
    opt = torch.optim.Adam(list(student.parameters()) + list(loss_fn.parameters()), 3e-3)
    values = []
    for step in range(steps):
        idx = torch.randint(0, len(x), (64,))
        s, t = student(x[idx])[which], teacher(x[idx])[which]
        out = loss_fn(s, t, y[idx])
        loss = sum(out.values()) if isinstance(out, dict) else out
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss.item())
    with torch.no_grad():
        acc = (student(xt)[2].argmax(1) == yt).float().mean().item()
    return acc, values


@pytest.mark.parametrize('name', sorted(LOGIT))
def test_logit_loss_alone_teaches_the_classes(data, name):
    acc, values = train_student(data, *LOGIT[name])
    print(f'{name}: student test accuracy {acc:.3f}, loss {values[0]:.4f} -> '
          f'{np.mean(values[-20:]):.4f}')
    assert acc > 0.6  # chance is 0.1; no label loss was used except inside DKD / AEKT terms


@pytest.mark.parametrize('name', sorted(FEATURE))
def test_feature_loss_alone_is_driven_down(data, name):
    _, values = train_student(data, *FEATURE[name])
    start, end = np.mean(values[:5]), np.mean(values[-20:])
    print(f'{name}: loss {start:.4f} -> {end:.4f}')
    assert end < 0.6 * start
