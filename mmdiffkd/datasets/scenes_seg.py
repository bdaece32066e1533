"""``mmdiffkd.ScenesSegDataset``: the texture scenes' label maps for MMSegmentation.

11 classes: 0 background, 1..10 the Fashion-MNIST classes (``tools/make_scenes.py`` writes them).
Background is a real class here, so ``reduce_zero_label`` must stay False; no pixel is 255.

    train_dataloader = dict(dataset=dict(
        type='mmdiffkd.ScenesSegDataset', data_root='data/scenes/',
        data_prefix=dict(img_path='train/images', seg_map_path='train/labels'), pipeline=...))
"""
from mmdiffkd.registry import DATASETS

from .scenes import SEG_CLASSES

# One colour per class for mmseg's visualizer (background black).
SEG_PALETTE = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200],
               [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60],
               [250, 190, 212]]

try:
    from mmseg.datasets import BaseSegDataset
except (ImportError, AssertionError) as error:  # optional; mmseg asserts its mmcv range
    BaseSegDataset, _MMSEG_ERROR = None, error

if BaseSegDataset is not None:

    @DATASETS.register_module()
    class ScenesSegDataset(BaseSegDataset):
        """Texture-scenes semantic segmentation: PNG images with same-named PNG label maps."""
        METAINFO = dict(classes=SEG_CLASSES, palette=SEG_PALETTE)

        def __init__(self, img_suffix='.png', seg_map_suffix='.png', reduce_zero_label=False,
                     **kwargs):
            if reduce_zero_label:
                raise ValueError('reduce_zero_label=True is invalid for ScenesSegDataset: '
                                 'label 0 is the background class, a real class here; use '
                                 'reduce_zero_label=False.')
            super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                             reduce_zero_label=False, **kwargs)

else:

    @DATASETS.register_module()
    def ScenesSegDataset(*args, **kwargs):  # noqa: N802 (stands in for the class)
        raise ImportError('mmdiffkd.ScenesSegDataset needs mmsegmentation (and mmcv with ops), '
                          f'which failed to import: {_MMSEG_ERROR}. Run `bash tools/setup.sh`.')
