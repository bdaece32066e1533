"""Texture scenes: real Fashion-MNIST items pasted on real scikit-image textures.

A small detection / segmentation data set made only from data that ships offline: every image is
a random crop of a texture from ``skimage.data`` with a few Fashion-MNIST items pasted on it. The
generator writes, per split,

- ``<split>/images/NNNNNN.png``  RGB image (``size`` x ``size``);
- ``<split>/labels/NNNNNN.png``  label map, 0 = background, 1..10 = Fashion-MNIST class + 1;
- ``annotations/<split>.json``   COCO instances (visible-pixel boxes, RLE masks, ids from 1);
- ``scenes.json``                the settings, their hash (the cache key) and the counts.

Train scenes use Fashion-MNIST train items, val scenes the t10k items, so no item is in both.
Every image draws from its own generator seeded by ``(seed, split, index)``: outputs are
byte-identical for the same settings, whatever order images are made in.
"""
import dataclasses
import hashlib
import json
import os
import os.path as osp
import shutil
import time

import numpy as np

from .fashion_mnist import CLASSES as FASHION_MNIST_CLASSES
from .fashion_mnist import DEBIAN_DIR as FASHION_MNIST_ROOT
from .fashion_mnist import INSTALL_HINT, read_idx

GENERATOR_VERSION = 3  # 3: hold-out split files

# Label-map classes: index 0 is the background, index c + 1 is Fashion-MNIST class c.
SEG_CLASSES = ('background', ) + FASHION_MNIST_CLASSES

# Natural images and micrographs that ship inside the scikit-image wheel (no download).
# Left out on purpose: horse (a binary silhouette), checkerboard / colorwheel / logo
# (synthetic), cat (the same photo as chelsea).
DEFAULT_TEXTURES = ('grass', 'gravel', 'brick', 'camera', 'moon', 'coins', 'text', 'page',
                    'clock', 'cell', 'coffee', 'rocket', 'astronaut', 'chelsea',
                    'immunohistochemistry', 'retina', 'hubble_deep_field')
SHIPPED_TEXTURES = DEFAULT_TEXTURES + ('horse', 'checkerboard', 'colorwheel', 'logo', 'cat')

SPLITS = {'train': ('train', 0), 'val': ('t10k', 1)}  # split -> (Fashion-MNIST file prefix, code)
MANIFEST = 'scenes.json'
# The last HOLDOUT_FRACTION of the train scenes, carved out for tuning (train on the rest, score
# on these): ``annotations/train_fit.json`` / ``train_holdout.json`` (mmdet) and
# ``splits/train_fit.txt`` / ``train_holdout.txt`` (image names, mmseg's ``ann_file``).
HOLDOUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class SceneSettings:
    """Everything that changes the generated files (and therefore the cache key)."""
    num_train: int = 2000
    num_val: int = 500
    size: int = 160            # image side, pixels
    seed: int = 0
    min_items: int = 2         # items per image, drawn uniformly in [min_items, max_items]
    max_items: int = 6
    min_scale: int = 16        # side of the pasted 28x28 item, pixels, in [min_scale, max_scale]
    max_scale: int = 64
    min_visible: float = 0.5   # an item keeps at least this fraction of its mask visible
    threshold: int = 16        # Fashion-MNIST pixel value above which a pixel is the item
    textures: tuple = DEFAULT_TEXTURES

    def __post_init__(self):
        object.__setattr__(self, 'textures', tuple(self.textures))
        self.validate()

    def validate(self):
        def need(ok, name, valid):
            if not ok:
                raise ValueError(f'{name}={getattr(self, name)!r} is invalid: need {valid}.')
        for name in ('num_train', 'num_val'):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name,
                 'an integer >= 0')
        need(isinstance(self.size, int) and self.size >= 32, 'size', 'an integer >= 32')
        need(isinstance(self.seed, int) and self.seed >= 0, 'seed', 'an integer >= 0')
        need(isinstance(self.min_items, int) and self.min_items >= 1, 'min_items',
             'an integer >= 1 (every image carries at least one item)')
        need(isinstance(self.max_items, int) and self.max_items >= self.min_items, 'max_items',
             f'an integer >= min_items={self.min_items}')
        need(isinstance(self.min_scale, int) and 8 <= self.min_scale <= self.size, 'min_scale',
             f'an integer in [8, size={self.size}]')
        need(isinstance(self.max_scale, int) and self.min_scale <= self.max_scale <= self.size,
             'max_scale', f'an integer in [min_scale={self.min_scale}, size={self.size}]')
        need(0.0 < self.min_visible <= 1.0, 'min_visible', 'a fraction in (0, 1]')
        need(isinstance(self.threshold, int) and 0 <= self.threshold < 255, 'threshold',
             'an integer in [0, 254]')
        need(len(self.textures) > 0, 'textures', f'a non-empty subset of {SHIPPED_TEXTURES}')
        for name in self.textures:
            if name not in SHIPPED_TEXTURES:
                raise ValueError(f'texture {name!r} is not one that ships with scikit-image; '
                                 f'valid: {SHIPPED_TEXTURES}.')

    def to_dict(self):
        out = dataclasses.asdict(self)
        out['textures'] = list(self.textures)
        return out

    def key(self):
        """Short hash of the settings and the generator version: the cache key."""
        blob = json.dumps({'generator_version': GENERATOR_VERSION, **self.to_dict()},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- inputs ------------------------------------------------------------------------------------

def load_items(split, root=FASHION_MNIST_ROOT):
    """Fashion-MNIST images (N, 28, 28) uint8 and labels (N,) for a scenes split."""
    if split not in SPLITS:
        raise ValueError(f'split={split!r} is invalid; valid: {tuple(SPLITS)}.')
    prefix = SPLITS[split][0]
    paths = [osp.join(root, f'{prefix}-{kind}-idx{nd}-ubyte.gz')
             for kind, nd in (('images', 3), ('labels', 1))]
    for path in paths:
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{path} not found. Fashion-MNIST is expected in {root} (Debian package '
                f'dataset-fashion-mnist: `{INSTALL_HINT}`, or tools/setup.sh), or pass the '
                'folder that holds its gzipped IDX files.')
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if len(images) != len(labels):
        raise ValueError(f'{paths[0]} has {len(images)} images but {paths[1]} '
                         f'{len(labels)} labels.')
    return images, labels


def load_textures(names=DEFAULT_TEXTURES):
    """RGB uint8 textures from ``skimage.data`` (gray ones copied to 3 channels)."""
    import skimage.data
    out = []
    for name in names:
        if name not in SHIPPED_TEXTURES:
            raise ValueError(f'texture {name!r} is not one that ships with scikit-image; '
                             f'valid: {SHIPPED_TEXTURES}.')
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype == bool:  # horse
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        elif img.shape[2] == 4:  # RGBA (logo): composite on white
            alpha = img[..., 3:].astype(np.float32) / 255.0
            img = np.rint(img[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        out.append(np.ascontiguousarray(img, dtype=np.uint8))
    return out


def item_mask(item, threshold=16):
    """Mask of a 28x28 item: pixels brighter than ``threshold``, holes filled."""
    from scipy.ndimage import binary_fill_holes
    return binary_fill_holes(item > threshold)


def scale_item(item, mask, side):
    """Resize an item and its mask to ``side`` x ``side``; the mask is re-thresholded at 0.5
    and its holes filled again, so it stays one solid silhouette at every scale."""
    from scipy.ndimage import binary_fill_holes
    from skimage.transform import resize
    down = side < item.shape[0]
    pixels = resize(item.astype(np.float32) / 255.0, (side, side), order=1,
                    anti_aliasing=down, preserve_range=True).astype(np.float32)
    soft = resize(mask.astype(np.float32), (side, side), order=1, anti_aliasing=down,
                  preserve_range=True)
    return pixels, binary_fill_holes(soft >= 0.5)


def make_background(rng, texture, size):
    """A random square crop of ``texture`` (random side, rotation, flip) resized to ``size``,
    as float32 RGB in [0, 1]. PIL's bilinear filter widens with the scale factor, so large
    crops are shrunk without aliasing, far faster than skimage's Gaussian-then-resize."""
    from PIL import Image
    h, w = texture.shape[:2]
    m = min(h, w)
    crop = int(rng.integers(min(size, m), m + 1))
    y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    patch = np.rot90(texture[y:y + crop, x:x + crop], k=int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    patch = Image.fromarray(np.ascontiguousarray(patch))
    return np.asarray(patch.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


# -- one scene ---------------------------------------------------------------------------------

def compose_scene(rng, items, labels, textures, settings, max_tries=20):
    """Make one scene.

    Items are pasted in order with their mask as alpha, so later items occlude earlier ones.
    A placement is accepted only if every item pasted so far keeps at least ``min_visible`` of
    its own mask visible; an item with no such placement in ``max_tries`` draws is not pasted
    at all (so no visible item is ever left without an annotation).

    Returns ``image`` (S, S, 3) uint8, ``label_map`` (S, S) uint8 (0 background, class + 1) and
    ``instances``: a list of ``dict(label, mask, pasted_area)``: each item's visible mask and the
    area of its whole mask when it was pasted.
    """
    s = settings
    size = s.size
    image = make_background(rng, textures[int(rng.integers(len(textures)))], size)
    owner = np.full((size, size), -1, np.int32)  # top-most instance at each pixel
    classes, full_areas = [], []
    for _ in range(int(rng.integers(s.min_items, s.max_items + 1))):
        index = int(rng.integers(len(items)))
        side = int(rng.integers(s.min_scale, s.max_scale + 1))
        pixels, mask = scale_item(items[index], item_mask(items[index], s.threshold), side)
        if not mask.any():
            continue
        k = len(classes)
        for _ in range(max_tries):
            y, x = int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1))
            trial = owner.copy()
            trial[y:y + side, x:x + side][mask] = k
            visible = np.bincount(trial[trial >= 0], minlength=k + 1)[:k]
            if all(visible[j] >= s.min_visible * full_areas[j] for j in range(k)):
                break
        else:
            continue
        owner = trial
        region = image[y:y + side, x:x + side]
        region[mask] = pixels[mask][:, None]
        classes.append(int(labels[index]))
        full_areas.append(int(mask.sum()))
    image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    label_map = np.zeros((size, size), np.uint8)
    instances = []
    for k, cls in enumerate(classes):
        visible = owner == k
        label_map[visible] = cls + 1
        instances.append(dict(label=cls, mask=visible, pasted_area=full_areas[k]))
    return image, label_map, instances


def mask_to_bbox(mask):
    """COCO ``[x, y, w, h]`` of the pixels set in ``mask`` (a box covering whole pixels)."""
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]


def encode_rle(mask):
    """Compressed COCO RLE of a boolean mask, json-ready (``counts`` as str)."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {'size': [int(v) for v in rle['size']], 'counts': rle['counts'].decode('ascii')}


def decode_rle(rle):
    """Boolean mask from a json RLE written by :func:`encode_rle`."""
    from pycocotools import mask as mask_utils
    return mask_utils.decode({'size': rle['size'], 'counts': rle['counts'].encode('ascii')}) > 0


# -- a whole data set --------------------------------------------------------------------------

def _save_png(array, path):
    from PIL import Image
    Image.fromarray(array).save(path, format='PNG', compress_level=6)


def _write_split(root, split, num, settings, items, labels, textures):
    img_dir, lab_dir = osp.join(root, split, 'images'), osp.join(root, split, 'labels')
    os.makedirs(img_dir)
    os.makedirs(lab_dir)
    coco = dict(
        info=dict(description=f'mmdiffkd texture scenes, {split} split',
                  settings_key=settings.key()),
        images=[], annotations=[],
        categories=[dict(id=c + 1, name=name, supercategory='fashion')
                    for c, name in enumerate(FASHION_MNIST_CLASSES)])
    code = SPLITS[split][1]
    for i in range(num):
        rng = np.random.default_rng([settings.seed, code, i])
        image, label_map, instances = compose_scene(rng, items, labels, textures, settings)
        name = f'{i:06d}.png'
        _save_png(image, osp.join(img_dir, name))
        _save_png(label_map, osp.join(lab_dir, name))
        coco['images'].append(dict(id=i + 1, file_name=name, width=settings.size,
                                   height=settings.size))
        for inst in instances:
            coco['annotations'].append(dict(
                id=len(coco['annotations']) + 1, image_id=i + 1, category_id=inst['label'] + 1,
                bbox=mask_to_bbox(inst['mask']), area=int(inst['mask'].sum()),
                segmentation=encode_rle(inst['mask']), iscrowd=0))
    with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
        json.dump(coco, f, sort_keys=True, separators=(',', ':'))
    return len(coco['annotations'])


def write_holdout(root, fraction=HOLDOUT_FRACTION):
    """Split the train scenes into a fit part and the last ``fraction`` held out for tuning.

    Derived from ``annotations/train.json`` only (no image is changed or copied); returns the
    counts of both parts. Every tool that tunes on the scenes trains on ``train_fit`` and scores
    on ``train_holdout``, so the 500 val scenes stay untouched until the final tables.
    """
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        coco = json.load(f)
    images = sorted(coco['images'], key=lambda im: im['id'])
    cut = len(images) - int(round(len(images) * fraction))
    os.makedirs(osp.join(root, 'splits'), exist_ok=True)
    counts = {}
    for part, chosen in (('train_fit', images[:cut]), ('train_holdout', images[cut:])):
        ids = {im['id'] for im in chosen}
        subset = dict(coco, images=chosen,
                      annotations=[a for a in coco['annotations'] if a['image_id'] in ids],
                      info=dict(coco['info'], description=coco['info']['description'] +
                                f', {part} part'))
        with open(osp.join(root, 'annotations', f'{part}.json'), 'w') as f:
            json.dump(subset, f, sort_keys=True, separators=(',', ':'))
        with open(osp.join(root, 'splits', f'{part}.txt'), 'w') as f:
            f.writelines(osp.splitext(im['file_name'])[0] + '\n' for im in chosen)
        counts[part] = dict(images=len(chosen), instances=len(subset['annotations']))
    return counts


def read_manifest(out):
    path = osp.join(out, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def generate_scenes(out, settings=None, fashion_mnist_root=FASHION_MNIST_ROOT, force=False):
    """Write the scenes data set into ``out``, or reuse it when it is already there.

    The cache key is :meth:`SceneSettings.key`, stored in ``out/scenes.json``. A folder made with
    other settings is replaced only with ``force=True``; a folder that is not a scenes folder is
    never touched. Files are first written to a sibling temporary folder and moved in place at
    the end, so an interrupted run never leaves a half data set that looks finished.

    Returns a dict: ``out``, ``key``, ``reused`` (bool), ``seconds`` and the manifest ``counts``.
    """
    settings = settings or SceneSettings()
    out = osp.abspath(out)
    key = settings.key()
    manifest = read_manifest(out)
    if manifest is not None and manifest.get('key') == key:
        return dict(out=out, key=key, reused=True, seconds=0.0, counts=manifest['counts'])
    if manifest is None and osp.exists(out) and (not osp.isdir(out) or os.listdir(out)):
        raise FileExistsError(f'{out} exists and is not a scenes folder (no {MANIFEST}); '
                              'choose another --out.')
    if manifest is not None and not force:
        raise FileExistsError(
            f'{out} holds scenes made with other settings (key {manifest.get("key")}: '
            f'{manifest.get("settings")}); the requested key is {key}. Choose another --out, '
            'or pass force=True / --force to replace it.')

    start = time.perf_counter()
    textures = load_textures(settings.textures)
    tmp = f'{out}.tmp-{os.getpid()}'
    if osp.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(osp.join(tmp, 'annotations'))
    counts = {}
    try:
        for split, num in (('train', settings.num_train), ('val', settings.num_val)):
            items, labels = load_items(split, fashion_mnist_root)
            n_inst = _write_split(tmp, split, num, settings, items, labels, textures)
            counts[split] = dict(images=num, instances=n_inst)
        counts.update(write_holdout(tmp))
        with open(osp.join(tmp, MANIFEST), 'w') as f:
            json.dump(dict(key=key, generator_version=GENERATOR_VERSION,
                           settings=settings.to_dict(), counts=counts,
                           classes=list(FASHION_MNIST_CLASSES),
                           seg_classes=list(SEG_CLASSES)), f, sort_keys=True, indent=1)
        # Another process (e.g. a second rank) may have finished the same set meanwhile.
        done = read_manifest(out)
        if done is not None and done.get('key') == key:
            return dict(out=out, key=key, reused=True, seconds=0.0, counts=done['counts'])
        if done is not None:
            if not force:
                raise FileExistsError(f'{out} was filled with other settings (key '
                                      f'{done.get("key")}) while this run worked; pass force=True '
                                      'to replace it, or choose another --out.')
            shutil.rmtree(out)
        os.makedirs(osp.dirname(out), exist_ok=True)
        try:
            os.replace(tmp, out)
        except OSError:  # `out` appeared (non-empty) since the check above
            done = read_manifest(out)
            if done is None or done.get('key') != key:
                raise
            return dict(out=out, key=key, reused=True, seconds=0.0, counts=done['counts'])
    finally:
        if osp.exists(tmp):
            shutil.rmtree(tmp)
    return dict(out=out, key=key, reused=False, seconds=time.perf_counter() - start,
                counts=counts)
