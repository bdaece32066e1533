# A torch + MMEngine toy classifier experiment (tests/tiny_models.py registers ToyClassifier).
default_scope = 'mmengine'
model = dict(type='ToyClassifier', width=8,
             data_preprocessor=dict(type='ImgDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3))
