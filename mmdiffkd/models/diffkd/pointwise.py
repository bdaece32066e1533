"""1x1 convolutions of the DiffKD networks, on the fastest kernel PyTorch has for them.

Most of DiffKD's arithmetic is 1x1 convolutions (the bottlenecks' reduce / expand convs, the
predictor's output conv, the projection, the alignment and the autoencoder). Two cases leave
speed on the table with a plain ``nn.Conv2d``:

- 1x1 maps (logits as (B, K, 1, 1)): the conv is a matrix product; ``F.linear`` is about twice
  as fast on CPU as the convolution kernel for the same numbers.
- On CPU, single-threaded, with fewer than 16 samples (one FPN level at batch 2), PyTorch's
  dispatch picks its reference kernel (``_slow_conv2d``: a GEMM per sample plus a bias copy
  and a zeroed gradient buffer) over oneDNN's. oneDNN is faster there from
  :data:`ONEDNN_MIN_POSITIONS` up to :data:`ONEDNN_MAX_POSITIONS` positions (B * H * W), and
  the reference kernel beyond (where oneDNN's layout reorders no longer fit the cache):
  measured on this project's 2-core x86_64 VM, fwd + bwd of the 256-channel RetinaNet convs,
  0.7-0.8x the time at 2 x 50 x 84 and 2 x 90 x 150, 1.1-1.6x at 2 x 100 x 168
  (``docs/diffkd.md``, Benchmark). Below the lower bound the maps are smaller than the
  weights, and oneDNN's per-call weight reorders raised the module's peak memory above the
  reference kernel's (2 x 7 x 11: +0.3 maps' worth) for a few percent of time.

:class:`OneDNNConv1x1` calls oneDNN directly in both directions. The numbers are those of the
same convolution (to float32 rounding); only the kernel changes. Anything else (other devices or
dtypes, autocast, ``torch.compile`` tracing, oneDNN disabled, larger batches, several threads,
where PyTorch already picks oneDNN) takes the ordinary ``nn.Conv2d`` path.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# oneDNN for B * H * W in this range (see above); the reference kernel outside it.
ONEDNN_MIN_POSITIONS = 256
ONEDNN_MAX_POSITIONS = 30000
# PyTorch picks oneDNN itself for 1x1 convs from this batch size on (or with several threads).
_ONEDNN_MIN_BATCH = 16

_aten = torch.ops.aten


class OneDNNConv1x1(torch.autograd.Function):
    """y = conv1x1(x, weight, bias) with oneDNN kernels for the forward and both gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _aten.mkldnn_convolution(x, weight, bias, [0, 0], [1, 1], [1, 1], 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            # dL/dx = W^T dL/dy at every position: the 1x1 conv with the transposed weight
            grad_x = _aten.mkldnn_convolution(grad, weight.transpose(0, 1), None, [0, 0], [1, 1],
                                              [1, 1], 1)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            # dL/dW = sum over positions of dL/dy x^T. A 1x1 kernel has a single tap, so a
            # dilation changes nothing in the numbers; PyTorch routes dilated convs to oneDNN.
            _, grad_w, grad_b = _aten.convolution_backward(
                grad, x, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0],
                [2, 2], False, [0, 0], 1, [False, True, ctx.has_bias])
        return grad_x, grad_w, grad_b


def _count_onednn_flops():
    """Let ``torch.utils.flop_counter`` count oneDNN's convolution like any convolution (the
    FLOP column of ``benchmarks/bench_step.py`` reads it)."""
    from torch.utils import flop_counter
    if _aten.mkldnn_convolution in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(_aten.mkldnn_convolution)
    def _flops(x_shape, w_shape, *args, out_shape=None, **kwargs):
        return flop_counter.conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


_count_onednn_flops()


def _use_onednn(conv: nn.Conv2d, x: Tensor) -> bool:
    if torch.compiler.is_compiling():  # compiled graphs pick their own kernels
        return False
    return (x.device.type == 'cpu' and x.dtype == torch.float32
            and conv.weight.dtype == torch.float32
            and x.shape[0] < _ONEDNN_MIN_BATCH and torch.get_num_threads() == 1
            and ONEDNN_MIN_POSITIONS <= x.shape[0] * x.shape[2] * x.shape[3] <= ONEDNN_MAX_POSITIONS
            and conv.kernel_size == (1, 1) and conv.groups == 1
            and conv.padding == (0, 0) and conv.stride == (1, 1)
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and not torch.is_autocast_enabled('cpu'))


def pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` for a 1x1 ``conv`` on a (B, C, H, W) map, on the fastest kernel (see above)."""
    if x.shape[2:] == (1, 1):
        w = conv.weight.flatten(1)
        return F.linear(x.flatten(1), w, conv.bias)[:, :, None, None]
    if _use_onednn(conv, x):
        return OneDNNConv1x1.apply(x, conv.weight, conv.bias)
    return conv(x)
