"""Texture-scenes generator: annotations agree with pixels; outputs deterministic and cached."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from helpers import REPO
from pycocotools import mask as mask_utils

from mmdiffkd.datasets import scenes
from mmdiffkd.datasets.scenes import SceneSettings, generate_scenes

TINY = SceneSettings(num_train=8, num_val=4, size=96, seed=3, min_items=2, max_items=5,
                     min_scale=16, max_scale=48)


def _digest(root):
    """sha256 of every file under root, by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp('scenes') / 'tiny'
    result = generate_scenes(str(out), TINY)
    assert not result['reused']
    return out


def _load(root, split):
    with open(osp.join(root, 'annotations', f'{split}.json')) as f:
        return json.load(f)


@pytest.mark.parametrize('split,num', [('train', 8), ('val', 4)])
def test_layout_and_categories(tiny, split, num):
    coco = _load(tiny, split)
    assert len(coco['images']) == num
    assert [c['name'] for c in coco['categories']] == list(scenes.FASHION_MNIST_CLASSES)
    assert [c['id'] for c in coco['categories']] == list(range(1, 11))
    for info in coco['images']:
        img = np.array(Image.open(osp.join(tiny, split, 'images', info['file_name'])))
        lab = np.array(Image.open(osp.join(tiny, split, 'labels', info['file_name'])))
        assert img.shape == (96, 96, 3) and img.dtype == np.uint8
        assert lab.shape == (96, 96) and lab.dtype == np.uint8
        assert info['width'] == info['height'] == 96
        assert lab.max() <= 10
    # COCO evaluation treats annotation id 0 as "unmatched": ids must start at 1.
    assert min(a['id'] for a in coco['annotations']) >= 1
    assert min(i['id'] for i in coco['images']) >= 1


@pytest.mark.parametrize('split', ['train', 'val'])
def test_boxes_inside_images_and_masks_match_boxes(tiny, split):
    coco = _load(tiny, split)
    assert len(coco['annotations']) >= 2 * len(coco['images'])  # min_items=2, always placed
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert x >= 0 and y >= 0 and w >= 1 and h >= 1
        assert x + w <= 96 and y + h <= 96
        mask = scenes.decode_rle(ann['segmentation'])
        assert mask.shape == (96, 96)
        assert ann['area'] == int(mask.sum()) > 0
        # The box is the tight box of the visible pixels: every border row/column is touched.
        assert not mask[:y].any() and not mask[y + h:].any()
        assert not mask[:, :x].any() and not mask[:, x + w:].any()
        assert mask[y].any() and mask[y + h - 1].any()
        assert mask[:, x].any() and mask[:, x + w - 1].any()
        # And it agrees with pycocotools' own box of the RLE.
        rle = dict(size=ann['segmentation']['size'],
                   counts=ann['segmentation']['counts'].encode())
        assert mask_utils.toBbox(rle).tolist() == [float(v) for v in ann['bbox']]
        assert ann['iscrowd'] == 0 and 1 <= ann['category_id'] <= 10


@pytest.mark.parametrize('split', ['train', 'val'])
def test_label_maps_agree_with_instances(tiny, split):
    coco = _load(tiny, split)
    for info in coco['images']:
        lab = np.array(Image.open(osp.join(tiny, split, 'labels', info['file_name'])))
        anns = [a for a in coco['annotations'] if a['image_id'] == info['id']]
        union = np.zeros_like(lab, dtype=np.int32)
        for ann in anns:
            mask = scenes.decode_rle(ann['segmentation'])
            assert (lab[mask] == ann['category_id']).all()
            union += mask
        assert union.max() == 1, 'visible masks of one image must not overlap'
        assert ((union > 0) == (lab > 0)).all(), 'every labelled pixel belongs to an instance'


def test_deterministic_and_seed_dependent(tiny, tmp_path):
    again = tmp_path / 'again'
    generate_scenes(str(again), TINY)
    assert _digest(again) == _digest(tiny)
    other = tmp_path / 'other_seed'
    generate_scenes(str(other), SceneSettings(**{**TINY.to_dict(), 'seed': 4}))
    a, b = _digest(other), _digest(tiny)
    assert a.keys() == b.keys()
    assert a['train/images/000000.png'] != b['train/images/000000.png']


def test_image_does_not_depend_on_split_size(tiny, tmp_path):
    # Each image has its own seed (seed, split, index): a bigger set extends a smaller one.
    bigger = tmp_path / 'bigger'
    generate_scenes(str(bigger), SceneSettings(**{**TINY.to_dict(), 'num_train': 10}))
    a, b = _digest(bigger), _digest(tiny)
    for i in range(8):
        assert a[f'train/images/{i:06d}.png'] == b[f'train/images/{i:06d}.png']


def test_cache_reused_and_other_settings_refused(tiny, tmp_path):
    before = {p: os.stat(osp.join(tiny, p)).st_mtime_ns for p in _digest(tiny)}
    result = generate_scenes(str(tiny), TINY)
    assert result['reused'] and result['key'] == TINY.key()
    assert {p: os.stat(osp.join(tiny, p)).st_mtime_ns for p in before} == before

    other = SceneSettings(**{**TINY.to_dict(), 'num_train': 2, 'num_val': 1})
    with pytest.raises(FileExistsError, match='other settings'):
        generate_scenes(str(tiny), other)
    # force=True replaces it (on a copy, so the module fixture stays intact).
    target = tmp_path / 'forced'
    generate_scenes(str(target), other)
    result = generate_scenes(str(target), SceneSettings(**{**other.to_dict(), 'seed': 9}),
                             force=True)
    assert not result['reused'] and scenes.read_manifest(str(target))['settings']['seed'] == 9

    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'mine.txt').write_text('not scenes')
    with pytest.raises(FileExistsError, match='not a scenes folder'):
        generate_scenes(str(foreign), other, force=True)
    assert (foreign / 'mine.txt').exists()


def test_set_finished_meanwhile_by_another_process_is_reused(tmp_path, monkeypatch):
    # Simulate a second rank that finishes the same set while this run is still generating.
    out = str(tmp_path / 'raced')
    small = SceneSettings(**{**TINY.to_dict(), 'num_train': 2, 'num_val': 1})
    real_load = scenes.load_textures
    calls = []

    def load_and_race(names):
        if not calls:
            calls.append(1)
            assert not generate_scenes(out, small)['reused']  # the "other rank"
        return real_load(names)

    monkeypatch.setattr(scenes, 'load_textures', load_and_race)
    assert not osp.exists(out)
    result = generate_scenes(out, small)
    assert result['reused'] and calls == [1]
    assert not [p for p in os.listdir(tmp_path) if '.tmp-' in p]


def test_item_masks_are_solid_at_every_scale():
    from scipy.ndimage import binary_fill_holes
    items, labels = scenes.load_items('val')
    assert items.shape == (10000, 28, 28) and labels.max() == 9
    for index in range(0, 10000, 997):
        mask = scenes.item_mask(items[index])
        assert mask.any() and (binary_fill_holes(mask) == mask).all()
        for side in (16, 37, 64):
            pixels, scaled = scenes.scale_item(items[index], mask, side)
            assert pixels.shape == scaled.shape == (side, side)
            assert (binary_fill_holes(scaled) == scaled).all()
            assert 0.0 <= pixels.min() and pixels.max() <= 1.0


def test_occlusion_keeps_min_visible_fraction():
    items, labels = scenes.load_items('val')
    textures = scenes.load_textures(('grass', 'coffee'))
    s = SceneSettings(size=64, min_items=6, max_items=6, min_scale=40, max_scale=48,
                      min_visible=0.6, textures=('grass', 'coffee'))
    rng = np.random.default_rng(0)
    for _ in range(5):
        image, label_map, instances = scenes.compose_scene(rng, items, labels, textures, s)
        assert image.shape == (64, 64, 3) and 1 <= len(instances) <= 6
        for inst in instances:
            assert inst['mask'].sum() >= 0.6 * inst['pasted_area'] > 0
            assert (label_map[inst['mask']] == inst['label'] + 1).all()


@pytest.mark.parametrize('field,value,words', [
    ('min_scale', 4, 'min_scale=4'), ('max_scale', 10, 'max_scale=10'),
    ('max_items', 0, 'max_items=0'), ('size', 16, 'size=16'),
    ('min_visible', 0.0, 'min_visible=0.0'), ('textures', ('grass', 'eagle'), "'eagle'")])
def test_bad_settings_name_the_value(field, value, words):
    with pytest.raises(ValueError, match=words):
        SceneSettings(**{field: value})


def test_missing_fashion_mnist_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match='dataset-fashion-mnist'):
        scenes.load_items('train', str(tmp_path))
    with pytest.raises(ValueError, match="split='test'"):
        scenes.load_items('test')


def test_cli_writes_then_reuses(tmp_path, capsys):
    import importlib.util
    path = osp.join(REPO, 'tools', 'make_scenes.py')
    spec = importlib.util.spec_from_file_location('make_scenes', path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    argv = ['--out', str(tmp_path / 's'), '--num-train', '2', '--num-val', '1', '--size', '64',
            '--max-scale', '32', '--textures', 'brick', 'moon']
    assert cli.main(argv) == 0
    assert 'Wrote scenes' in capsys.readouterr().out
    assert cli.main(argv) == 0
    assert 'Reused' in capsys.readouterr().out
    assert cli.main(argv[:-3] + ['--min-scale', '80']) == 2
    assert 'min_scale=80' in capsys.readouterr().err
