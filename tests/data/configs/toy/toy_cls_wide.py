_base_ = './toy_cls.py'
model = dict(width=16)
