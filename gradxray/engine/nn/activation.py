"""Activation modules (SiLU, Sigmoid, Tanh, Softplus, LeakyReLU, ELU, Hardswish, Mish ...)."""
from __future__ import annotations

from ..creation import full
from ..tensor import Parameter
from . import Module
from . import functional as F

__all__ = ["Sigmoid", "Tanh", "SiLU", "Mish", "Softplus", "LeakyReLU", "ELU", "SELU", "CELU", "Hardswish",
           "Hardsigmoid", "Hardtanh", "ReLU6", "Softsign", "LogSigmoid", "PReLU", "Softmax", "LogSoftmax", "Softmin",
           "Upsample"]


class _InplaceFlag(Module):
    """An activation whose only option is ``inplace``."""

    function = None

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return type(self).function(input, inplace=self.inplace)


class Sigmoid(Module):
    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input):
        return F.tanh(input)


class Softsign(Module):
    def forward(self, input):
        return F.softsign(input)


class LogSigmoid(Module):
    def forward(self, input):
        return F.logsigmoid(input)


class SiLU(_InplaceFlag):
    function = staticmethod(F.silu)


class Mish(_InplaceFlag):
    function = staticmethod(F.mish)


class SELU(_InplaceFlag):
    function = staticmethod(F.selu)


class Hardswish(_InplaceFlag):
    function = staticmethod(F.hardswish)


class Hardsigmoid(_InplaceFlag):
    function = staticmethod(F.hardsigmoid)


class ReLU6(_InplaceFlag):
    function = staticmethod(F.relu6)


class Softplus(Module):
    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope, self.inplace)


class ELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha, self.inplace)


class CELU(Module):
    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.celu(input, self.alpha, self.inplace)


class Hardtanh(Module):
    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        super().__init__()
        if min_val > max_val:
            raise ValueError("min_val cannot be greater than max_val")
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, input):
        return F.hardtanh(input, self.min_val, self.max_val, self.inplace)


class PReLU(Module):
    """A learnable negative slope: one shared value or one per channel, initialised to ``init``."""

    def __init__(self, num_parameters=1, init=0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(full((num_parameters,), init, dtype=dtype, device=device))

    def forward(self, input):
        return F.prelu(input, self.weight)


class _SoftmaxFamily(Module):
    """nn.Softmax / LogSoftmax / Softmin: the functional over ``dim`` (None: torch's legacy choice)."""

    function = None

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, input):
        return type(self).function(input, self.dim, _stacklevel=5)


class Softmax(_SoftmaxFamily):
    function = staticmethod(F.softmax)


class LogSoftmax(_SoftmaxFamily):
    function = staticmethod(F.log_softmax)


class Softmin(_SoftmaxFamily):
    function = staticmethod(F.softmin)


class Upsample(Module):
    """nn.Upsample: ``F.interpolate`` with the module's size / scale_factor / mode (torch keeps it among the
    upsampling modules; it lives here with the other parameter-free layers)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size = size
        self.scale_factor = float(scale_factor) if isinstance(scale_factor, (int, float)) else (
            tuple(float(f) for f in scale_factor) if scale_factor is not None else None)
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input):
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)
