"""Indexing, index assignment, gather/scatter, masks, where and the shape ops built on them, against
torch.autograd: values, dtypes, saved tensors (bytes by storage), first- and second-order gradients and
the shape backend; plus torch's error messages for bad input."""
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as TF  # noqa: E402

import gradxray.engine as gx  # noqa: E402
from gradxray.engine.nn import functional as F  # noqa: E402
from gradxray.engine.ops.indexing import DataDependentShapeError  # noqa: E402
from tests.support.opcheck import Arg, check_op  # noqa: E402


def same(fn):
    """A case whose torch and engine code read the same (methods and operators on both tensor types)."""
    return fn, fn


def both(name, *args, **kwargs):
    """torch.<name>(*tensors, ...) and gx.<name>(*tensors, ...) with the same extra arguments."""
    return (lambda *t: getattr(torch, name)(*t, *args, **kwargs), lambda *t: getattr(gx, name)(*t, *args, **kwargs))


def functional(name, *args, **kwargs):
    """F.<name>(x, ...) on both sides."""
    return (lambda x: getattr(TF, name)(x, *args, **kwargs), lambda x: getattr(F, name)(x, *args, **kwargs))


def long(*values):
    return torch.tensor(values, dtype=torch.int64)


def mask(*values):
    return torch.tensor(values, dtype=torch.bool)


def assign(index, value_is_arg=True, scalar=None):
    """``y = x.clone(); y[index] = v; return y`` (index passed as the last argument when it is a tensor)."""
    def run(x, *rest):
        y = x.clone()
        if value_is_arg:
            v, *idx = rest
        else:
            v, idx = scalar, list(rest)
        y[index(*idx)] = v
        return y
    return run


def add_assign(x, v, i):
    y = x.clone()
    y[i] += v
    return y


I3 = long(0, 2, -1)                      # negative index
REPEATED = long(1, 1, 3, 1)              # repeated: backward accumulates
ROWS = long(0, 3)
M4 = mask(True, False, True, True)
M43 = torch.tensor([[True, False, True], [False, False, True], [True, True, True], [False, False, False]])
M23 = torch.tensor([[True, False, True], [True, True, False]])
GATHER_IDX = long(0, 2, 1, 2, 0, 0, 1, 1).view(4, 2)
SCATTER_IDX = long(2, 0, 1, 2).view(4, 1)
NO_SHAPE = {"shape_backend": False}      # the output size depends on mask values: no shape-backend run
# an in-place op on a view goes through the core's CopySlices (differentiable again: second order checked)
VIEW_INPLACE = {}

CASES = {
    # -- advanced indexing (IndexBackward0 saves the indices) --------------------------------------
    "index_tensor_negative": (*same(lambda x, i: x[i]), [Arg((4, 3)), I3], {}),
    "index_repeated_accumulates": (*same(lambda x, i: x[i]), [Arg((4, 3)), REPEATED], {}),
    "index_list": (*same(lambda x: x[[0, 2]]), [Arg((4, 3))], {}),
    "index_list_middle_dim": (*same(lambda x: x[:, [-1], :]), [Arg((2, 3, 4))], {}),
    "index_broadcast_pair": (*same(lambda x, i, j: x[i, j]), [Arg((4, 5, 2)), long(0, 3).view(2, 1), long(1, 4, 0)],
                             {}),
    "index_separated_by_slice": (*same(lambda x, i, j: x[i, :, j]), [Arg((4, 3, 5)), ROWS, long(4, 1)], {}),
    "index_int_then_slice_then_tensor": (*same(lambda x, i: x[1, :, i]), [Arg((2, 3, 4)), long(3, 0, 3)], {}),
    "index_none_between": (*same(lambda x, i, j: x[i, None, j]), [Arg((4, 3, 5)), ROWS, long(2, 2)], {}),
    "index_ellipsis_last": (*same(lambda x, i: x[..., i]), [Arg((2, 3, 4)), long(3, 1)], {}),
    "index_2d_index": (*same(lambda x, i: x[i]), [Arg((4, 3)), long(0, 1, 1, 3).view(2, 2)], {}),
    "index_int32": (*same(lambda x, i: x[i]), [Arg((4, 3)), torch.tensor([3, 0], dtype=torch.int32)], {}),
    "index_transposed_input": (*same(lambda x, i: x[:, i]), [Arg((3, 4), transposed=True), I3], {}),
    "index_after_step_slice": (*same(lambda x, i: x[::2, i]), [Arg((5, 4)), long(3, 0)], {}),
    "index_mixed_3d": (*same(lambda x, i, j: x[i, 1:3, j]), [Arg((4, 3, 5)), ROWS, long(-1, 2)], {}),
    "index_0dim_tensor_selects": (*same(lambda x, i: x[i] * 2), [Arg((4, 3)), torch.tensor(2)], {}),
    "index_true": (*same(lambda x: x[True]), [Arg((4, 3))], {}),
    "index_false_empty": (*same(lambda x: x[False]), [Arg((4, 3))], {}),
    "index_empty_list": (*same(lambda x: x[[]]), [Arg((4, 3))], {}),
    "index_nested_list_as_tuple": (*same(lambda x: x[(0, [1, 2])]), [Arg((4, 3))], {}),
    "index_mask": (*same(lambda x, m: x[m]), [Arg((4, 3)), M4], NO_SHAPE),
    "index_mask_2d": (*same(lambda x, m: x[m]), [Arg((4, 3)), M43], NO_SHAPE),
    "index_mask_then_int": (*same(lambda x, m: x[m, 1]), [Arg((2, 3, 4)), M23], NO_SHAPE),
    "index_mask_then_list": (*same(lambda x, m: x[m, [0, 3, 3, 1]]), [Arg((2, 3, 4)), M23], NO_SHAPE),
    "index_mask_then_slice_then_tensor": (*same(lambda x, m, i: x[m, :, i]), [Arg((2, 3, 5, 4)), M23, long(1, 1, 0, 2)],
                                          NO_SHAPE),
    "index_mask_after_int": (*same(lambda x, m: x[0, m]), [Arg((2, 4, 3)), M4], NO_SHAPE),
    "index_list_of_bools": (*same(lambda x: x[[True, False, True, False]]), [Arg((4, 3))], NO_SHAPE),
    "basic_ellipsis_alias": (*same(lambda x: x[...] * 1), [Arg((2, 3))], {}),
    "basic_mixed_views": (*same(lambda x: x[1:, None, ..., ::2]), [Arg((3, 2, 5))], {}),
    # -- index assignment ---------------------------------------------------------------------------
    "setitem_index": (*same(assign(lambda i: i)), [Arg((4, 3)), Arg((3, 3)), I3], {}),
    "setitem_index_broadcast_value": (*same(assign(lambda i: i)), [Arg((4, 3)), Arg((3,)), I3], {}),
    "setitem_index_leading_ones": (*same(assign(lambda i: i)), [Arg((4, 3)), Arg((1, 1, 3)), ROWS], {}),
    "setitem_two_indices": (*same(assign(lambda i, j: (i, j))), [Arg((4, 5)), Arg((2,)), ROWS, long(4, 0)], {}),
    "setitem_scalar": (*same(assign(lambda i: i, value_is_arg=False, scalar=0.5)), [Arg((4, 3)), I3], {}),
    "setitem_mask_value": (*same(assign(lambda m: m)), [Arg((4, 3)), Arg((3,)), M4], NO_SHAPE),
    "setitem_mask_scalar": (*same(assign(lambda m: m, value_is_arg=False, scalar=-1.0)), [Arg((4, 3)), M43],
                            NO_SHAPE),
    "setitem_add_assign": (*same(add_assign), [Arg((4, 3)), Arg((2, 3)), ROWS], {}),
    "setitem_slice_copy": (*same(assign(lambda: slice(1, 3))), [Arg((4, 3)), Arg((2, 3))], VIEW_INPLACE),
    "setitem_slice_broadcast": (*same(assign(lambda: (slice(None), 1))), [Arg((4, 3)), Arg((1,))], VIEW_INPLACE),
    "setitem_int_scalar_fill": (*same(assign(lambda: 1, value_is_arg=False, scalar=2.0)), [Arg((4, 3))], VIEW_INPLACE),
    "setitem_int_0dim_value_fill": (*same(lambda x, v: assign(lambda: (1, 2))(x, v[0])), [Arg((4, 3)), Arg((1,))],
                                    VIEW_INPLACE),
    "setitem_ellipsis": (*same(assign(lambda: Ellipsis)), [Arg((4, 3)), Arg((3,))], {}),
    "index_put_accumulate": (*same(lambda x, v, i: x.clone().index_put_((i,), v, accumulate=True)),
                             [Arg((4, 3)), Arg((4, 3)), REPEATED], {}),
    "index_put_out_of_place": (*same(lambda x, v, i: x.index_put((i,), v)), [Arg((4, 3)), Arg((3,)), I3], {}),
    "copy_broadcast": (*same(lambda x, v: x.clone().copy_(v)), [Arg((4, 3)), Arg((3,))], {}),
    "copy_dtype_conversion": (*same(lambda x, v: x.clone().copy_(v)), [Arg((4, 3)), Arg((4, 3), dtype=torch.float32)],
                              {}),
    "copy_into_transposed": (*same(lambda x, v: x.clone().t().copy_(v)), [Arg((4, 3)), Arg((3, 4))], VIEW_INPLACE),
    # -- gather / scatter / index_select / index_add ---------------------------------------------
    "gather": (*same(lambda x, i: x.gather(1, i)), [Arg((4, 3)), GATHER_IDX], {}),
    "gather_dim0_transposed": (*same(lambda x, i: torch.gather(x, 0, i) if isinstance(x, torch.Tensor)
                                     else gx.gather(x, 0, i)), [Arg((3, 4), transposed=True), GATHER_IDX.t()], {}),
    "scatter_src": (*same(lambda x, s, i: x.scatter(1, i, s)), [Arg((4, 3)), Arg((4, 1)), SCATTER_IDX], {}),
    "scatter_value": (*same(lambda x, i: x.scatter(1, i, 1.5)), [Arg((4, 3)), SCATTER_IDX], {}),
    "scatter_src_only": (*same(lambda x, s, i: x.scatter(0, i, s)), [Arg((4, 3), requires_grad=False), Arg((2, 3)),
                                                                     long(1, 0, 3, 2, 2, 0).view(2, 3)], {}),
    "scatter_add": (*same(lambda x, s, i: x.scatter_add(1, i, s)),
                    [Arg((4, 3)), Arg((4, 2)), long(0, 0, 2, 2, 1, 1, 0, 0).view(4, 2)], {}),
    "scatter_inplace_on_clone": (*same(lambda x, s, i: x.clone().scatter_(1, i, s)),
                                 [Arg((4, 3)), Arg((4, 1)), SCATTER_IDX], {}),
    "scatter_add_inplace_on_clone": (*same(lambda x, s, i: x.clone().scatter_add_(0, i, s)),
                                     [Arg((4, 3)), Arg((2, 3)), long(1, 1, 3, 0, 1, 1).view(2, 3)], {}),
    "index_select": (*same(lambda x, i: x.index_select(0, i)), [Arg((4, 3)), REPEATED], {}),
    "index_select_dim1_transposed": (*same(lambda x, i: x.index_select(-1, i)),
                                     [Arg((4, 3), transposed=True), long(2, 0)], {}),
    "index_add": (*same(lambda x, s, i: x.index_add(0, i, s)), [Arg((4, 3)), Arg((4, 3)), REPEATED], {}),
    "index_add_alpha": (*same(lambda x, s, i: x.index_add(1, i, s, alpha=2.5)), [Arg((4, 3)), Arg((4, 2)), long(2, 2)],
                        {}),
    "index_add_source_no_grad": (*same(lambda x, s, i: x.index_add(0, i, s)),
                                 [Arg((4, 3)), Arg((2, 3), requires_grad=False), ROWS], {}),
    "index_add_self_no_grad": (*same(lambda x, s, i: x.index_add(0, i, s)),
                               [Arg((4, 3), requires_grad=False), Arg((2, 3)), ROWS], {}),
    "take_along_dim": (*same(lambda x, i: torch.take_along_dim(x, i, 1) if isinstance(x, torch.Tensor)
                             else gx.take_along_dim(x, i, 1)), [Arg((4, 3)), long(2, -1, 1, -3).view(4, 1)], {}),
    "take_along_dim_broadcast": (*same(lambda x, i: x.take_along_dim(i, dim=0)), [Arg((4, 1)), long(3, 0, 2).view(3, 1)
                                                                                   .expand(3, 5).contiguous()], {}),
    "take_along_dim_flat": (*same(lambda x, i: x.take_along_dim(i)), [Arg((4, 3)), long(11, 0, 5)], {}),
    # -- masks and where ----------------------------------------------------------------------
    "masked_fill_scalar": (*same(lambda x, m: x.masked_fill(m, -2.0)), [Arg((4, 3)), M43], {}),
    "masked_fill_broadcast_mask": (*same(lambda x, m: x.masked_fill(m, 0.0)), [Arg((4, 3)), M43[:, :1].contiguous()],
                                   {}),
    "masked_fill_mask_larger": (*same(lambda x, m: x.masked_fill(m, 1.0)), [Arg((3,)), M23], {}),
    "masked_fill_tensor_value": (*same(lambda x, v, m: x.masked_fill(m, v[0])), [Arg((4, 3)), Arg((1,)), M43],
                                 NO_SHAPE),
    "masked_fill_inplace": (*same(lambda x, m: x.clone().masked_fill_(m, 3.0)), [Arg((4, 3)), M43], {}),
    "masked_fill_transposed": (*same(lambda x, m: x.masked_fill(m, 3.0)), [Arg((4, 3), transposed=True), M43], {}),
    "masked_select": (*same(lambda x, m: x.masked_select(m)), [Arg((4, 3)), M43], NO_SHAPE),
    "masked_select_broadcast": (*same(lambda x, m: torch.masked_select(x, m) if isinstance(x, torch.Tensor)
                                      else gx.masked_select(x, m)), [Arg((3,)), M23], NO_SHAPE),
    "masked_scatter": (*same(lambda x, s, m: x.masked_scatter(m, s)), [Arg((4, 3)), Arg((10,)), M43], {}),
    "where": (*both("where"), [M43, Arg((4, 3)), Arg((3,))], {}),
    "where_scalar_other": (lambda m, x: torch.where(m, x, 0.0), lambda m, x: gx.where(m, x, 0.0),
                           [M43, Arg((4, 3))], {}),
    "where_scalar_input": (lambda m, y: torch.where(m, 2.0, y), lambda m, y: gx.where(m, 2.0, y),
                           [M43, Arg((4, 1))], {}),
    "where_mixed_dtype": (*both("where"), [M43, Arg((4, 3)), Arg((3,), dtype=torch.float64)], {}),
    "where_method": (*same(lambda x, m, y: x.where(m, y)), [Arg((4, 3)), M43, Arg((4, 3), transposed=True)], {}),
    "nonzero": (*both("nonzero"), [M43], NO_SHAPE),
    "nonzero_float_input_as_tuple": (lambda x: torch.nonzero(x > 0, as_tuple=True),
                                     lambda x: gx.nonzero(x > 0, as_tuple=True), [Arg((4, 3))], NO_SHAPE),
    "where_one_arg": (*both("where"), [M43], NO_SHAPE),
    "one_hot_times_x": (lambda x, t: TF.one_hot(t, 4).double() * x, lambda x, t: F.one_hot(t, 4).double() * x,
                        [Arg((3, 4), dtype=torch.float64), long(0, 3, 1)], {}),
    "one_hot_inferred": (lambda t: TF.one_hot(t), lambda t: F.one_hot(t), [long(0, 3, 1, 1).view(2, 2)], NO_SHAPE),
    # -- triangles, roll, flip, repeat -------------------------------------------------------
    "tril": (*same(lambda x: x.tril()), [Arg((4, 3))], {}),
    "triu_diagonal": (*both("triu", diagonal=-1), [Arg((2, 3, 4))], {}),
    "tril_inplace": (*same(lambda x: x.clone().tril_(1)), [Arg((3, 4), transposed=True)], {}),
    "triu_inplace": (*same(lambda x: x.clone().triu_(-2)), [Arg((4, 4))], {}),
    "roll": (*same(lambda x: x.roll(1, 0)), [Arg((4, 3))], {}),
    "roll_multi": (*same(lambda x: x.roll((2, -1), (1, -1))), [Arg((2, 4, 3))], {}),
    "roll_flat": (*both("roll", 5), [Arg((4, 3), transposed=True)], {}),
    "flip": (*same(lambda x: x.flip(0, 2)), [Arg((2, 3, 4))], {}),
    "flip_torch": (*both("flip", [-1]), [Arg((3, 4), transposed=True)], {}),
    "repeat": (*same(lambda x: x.repeat(2, 1, 3)), [Arg((4, 3))], {}),
    "repeat_list_ones": (*same(lambda x: x.repeat([1, 1])), [Arg((4, 3))], {}),
    "repeat_zero": (*same(lambda x: x.repeat(0, 2)), [Arg((4, 3))], {}),
    "repeat_transposed": (*same(lambda x: x.repeat(2, 2)), [Arg((3, 4), transposed=True)], {}),
    "tile": (*both("tile", (2,)), [Arg((2, 3))], {}),
    "tile_method_more_dims": (*same(lambda x: x.tile(2, 1, 2)), [Arg((2, 3))], {}),
    "repeat_interleave_dim": (*same(lambda x: x.repeat_interleave(2, 0)), [Arg((4, 3))], {}),
    "repeat_interleave_negative_dim": (*both("repeat_interleave", 3, dim=-1), [Arg((2, 3), transposed=True)], {}),
    "repeat_interleave_flat": (*same(lambda x: x.repeat_interleave(2)), [Arg((4, 3))], {}),
    # -- stack and friends ------------------------------------------------------------------
    "stack": (lambda a, b: torch.stack([a, b], 1), lambda a, b: gx.stack([a, b], 1), [Arg((4, 3)), Arg((4, 3))], {}),
    "stack_last_transposed": (lambda a, b: torch.stack((a, b), -1), lambda a, b: gx.stack((a, b), -1),
                              [Arg((4, 3), transposed=True), Arg((4, 3))], {}),
    "stack_mixed_dtypes": (lambda a, b: torch.stack([a, b]), lambda a, b: gx.stack([a, b]),
                           [Arg((3,)), Arg((3,), dtype=torch.float64)], {}),
    "stack_one_no_grad": (lambda a, b: torch.stack([a, b]), lambda a, b: gx.stack([a, b]),
                          [Arg((3,)), Arg((3,), requires_grad=False)], {}),
    "hstack_2d": (lambda a, b: torch.hstack([a, b]), lambda a, b: gx.hstack([a, b]), [Arg((4, 3)), Arg((4, 2))], {}),
    "hstack_1d": (lambda a, b: torch.hstack([a, b]), lambda a, b: gx.hstack([a, b]), [Arg((3,)), Arg((2,))], {}),
    "hstack_0d": (lambda a, b: torch.hstack([a[0], b[0]]), lambda a, b: gx.hstack([a[0], b[0]]),
                  [Arg((1,)), Arg((1,))], {}),
    "vstack_1d": (lambda a, b: torch.vstack([a, b]), lambda a, b: gx.vstack([a, b]), [Arg((3,)), Arg((3,))], {}),
    "vstack_2d_0d": (lambda a, b: torch.vstack([a, b[0]]), lambda a, b: gx.vstack([a, b[0]]),
                     [Arg((2, 1)), Arg((1,))], {}),
    "unbind_all": (*same(lambda x: x.unbind(1)), [Arg((4, 3))], {}),
    "unbind_one_used": (*same(lambda x: x.unbind(0)[2] * 2), [Arg((4, 3), transposed=True)], {}),
    "unbind_torch": (*both("unbind", -1), [Arg((2, 3))], {}),
    "unflatten": (*same(lambda x: x.unflatten(1, (3, -1))), [Arg((2, 6))], {}),
    "unflatten_transposed": (*both("unflatten", 1, (2, 2)), [Arg((3, 4), transposed=True)], {}),
    "movedim": (*same(lambda x: x.movedim(0, -1)), [Arg((2, 3, 4))], {}),
    "movedim_lists": (*both("movedim", (0, 1), (2, 0)), [Arg((2, 3, 4))], {}),
    "moveaxis": (*same(lambda x: x.moveaxis(1, 0)), [Arg((2, 3))], {}),
    "movedim_0dim": (*same(lambda x: x[0].movedim(0, 0) * 1), [Arg((1,))], {}),
    "swapaxes": (*same(lambda x: x.swapaxes(0, 2)), [Arg((2, 3, 4))], {}),
    "swapdims": (*both("swapdims", 0, 1), [Arg((2, 3))], {}),
    "expand_as": (*same(lambda x, y: x.expand_as(y)), [Arg((3, 1)), Arg((2, 3, 4), requires_grad=False)], {}),
    "view_as": (*same(lambda x, y: x.view_as(y)), [Arg((4, 3)), Arg((2, 6), requires_grad=False)], {}),
    "reshape_as_copies": (*same(lambda x, y: x.reshape_as(y)), [Arg((4, 3), transposed=True),
                                                                 Arg((12,), requires_grad=False)], {}),
    # -- padding --------------------------------------------------------------------------
    "pad_constant": (*functional("pad", (1, 2)), [Arg((2, 4, 3))], {}),
    "pad_constant_value_3dims": (*functional("pad", (1, 0, 0, 2, 1, 1), value=0.5), [Arg((2, 3, 4))], {}),
    "pad_constant_negative": (*functional("pad", (-1, 2, 1, -1)), [Arg((2, 4, 3))], {}),
    "pad_constant_transposed": (*functional("pad", (2, 2)), [Arg((3, 4), transposed=True)], {}),
    "pad_reflect_1d": (*functional("pad", (2, 1), mode="reflect"), [Arg((2, 4, 5))], {}),
    "pad_reflect_1d_unbatched": (*functional("pad", (1, 3), mode="reflect"), [Arg((3, 5))], {}),
    "pad_reflect_2d": (*functional("pad", (1, 2, 2, 0), mode="reflect"), [Arg((2, 2, 4, 3))], {}),
    "pad_reflect_3d": (*functional("pad", (1, 1, 0, 2, 1, 0), mode="reflect"), [Arg((1, 2, 3, 4, 3))], {}),
    "pad_reflect_negative": (*functional("pad", (-1, 2), mode="reflect"), [Arg((2, 3, 4))], {}),
    "pad_replicate_1d": (*functional("pad", (3, 1), mode="replicate"), [Arg((2, 4, 3))], {}),
    "pad_replicate_2d": (*functional("pad", (1, 2, 1, 0), mode="replicate"), [Arg((2, 2, 4, 3))], {}),
    "pad_replicate_3d_unbatched": (*functional("pad", (1, 0, 1, 1, 0, 2), mode="replicate"), [Arg((2, 3, 2, 3))], {}),
    "pad_circular_1d": (*functional("pad", (1, 2), mode="circular"), [Arg((2, 4, 3))], VIEW_INPLACE),
    "pad_circular_2d": (*functional("pad", (1, 2, 1, 1), mode="circular"), [Arg((1, 2, 4, 3))], VIEW_INPLACE),
    "pad_circular_negative": (*functional("pad", (-1, 2), mode="circular"), [Arg((2, 3, 4))], VIEW_INPLACE),
    # -- interpolate ---------------------------------------------------------------------------
    "nearest_1d_size": (*functional("interpolate", size=7), [Arg((1, 2, 4))], {}),
    "nearest_2d_scale": (*functional("interpolate", scale_factor=2), [Arg((1, 2, 4, 3))], {}),
    "nearest_2d_fractional_scale": (*functional("interpolate", scale_factor=(1.5, 0.5)), [Arg((2, 1, 4, 6))], {}),
    "nearest_2d_size_transposed": (*functional("interpolate", size=(5, 2)), [Arg((3, 4, 2, 1), transposed=True)], {}),
    "nearest_3d": (*functional("interpolate", scale_factor=2), [Arg((1, 1, 2, 3, 2))], {}),
    "nearest_recompute_scale": (*functional("interpolate", scale_factor=2.5, recompute_scale_factor=True),
                                [Arg((1, 1, 3, 3))], {}),
    "bilinear_scale": (*functional("interpolate", scale_factor=2, mode="bilinear"), [Arg((1, 2, 4, 3))], {}),
    "bilinear_size_align_corners": (*functional("interpolate", size=(5, 7), mode="bilinear", align_corners=True),
                                    [Arg((2, 2, 4, 3))], {}),
    "bilinear_downsample": (*functional("interpolate", size=(2, 3), mode="bilinear", align_corners=False),
                            [Arg((1, 1, 5, 7))], {}),
}
# reduced precision where the op's numbers are exact copies or short sums
HALF_CASES = ["index_tensor_negative", "index_repeated_accumulates", "index_mask", "setitem_index",
              "gather", "scatter_add", "index_select", "masked_fill_scalar", "where", "stack", "pad_reflect_2d",
              "pad_constant", "repeat", "nearest_2d_scale", "bilinear_scale", "roll", "flip", "tril"]


def _run(name, dtype):
    torch_fn, gx_fn, args, check = CASES[name]
    check_op(torch_fn, gx_fn, args, dtype=dtype, **check)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_op_matches_torch(name, dtype):
    _run(name, dtype)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("name", HALF_CASES)
def test_reduced_precision(name, dtype):
    _run(name, dtype)


# -- node names: the graph torch records ------------------------------------------------------

def _node_names(out):
    names, node = [], out.grad_fn
    while node is not None:
        names.append(node.name().replace("torch::autograd::", ""))
        nexts = [f for f, _ in node.next_functions if f is not None and "AccumulateGrad" not in f.name()]
        node = nexts[0] if nexts else None
    return names


@pytest.mark.parametrize("fn", [
    lambda x, i, m: x[i], lambda x, i, m: x[m], lambda x, i, m: x[i, 1:], lambda x, i, m: x[...],
    lambda x, i, m: assign(lambda j: j)(x, x[:3].detach() * 0 + 1, i),
    lambda x, i, m: add_assign(x, x[:3], i), lambda x, i, m: assign(lambda: 1, False, 2.0)(x),
    lambda x, i, m: x.clone().copy_(x[0]), lambda x, i, m: x.gather(0, i[:, None].expand(3, 3)),
    lambda x, i, m: x.scatter(0, i[:, None].expand(3, 3), 0.0), lambda x, i, m: x.masked_fill(m[:, None], 0.0),
    lambda x, i, m: x.take_along_dim(i[:, None], 0), lambda x, i, m: x.repeat_interleave(2, 1),
    lambda x, i, m: x.unbind(0)[1],
], ids=["index", "mask", "slice_index", "alias", "index_put", "add_assign", "copy_slices_fill", "copy",
        "gather", "scatter_value", "masked_fill", "take_along_dim", "repeat_interleave", "unbind"])
def test_graph_node_names(fn):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    i, m = long(0, 2, 3), M4
    with gx.backend("torch"):
        gxx = gx.from_torch(x)
    assert _node_names(fn(gxx, gx.from_torch(i), gx.from_torch(m))) == _node_names(fn(x, i, m))


# -- the shape backend ------------------------------------------------------------------------

def test_shape_backend_mask_is_data_dependent():
    with gx.backend("shape"):
        x = gx.empty(4, 3, requires_grad=True)
        m = gx.empty(4, dtype=gx.bool)
        for fn in (lambda: x[m], lambda: x.masked_select(m[:, None]), lambda: gx.nonzero(m),
                   lambda: F.one_hot(gx.empty(3, dtype=gx.int64))):
            with pytest.raises(DataDependentShapeError, match="depends on"):
                fn()
        # assignment through a mask keeps x's shape: it works without data
        y = x.clone()
        y[m] = 1.0
        assert tuple(y.shape) == (4, 3)


def test_shape_backend_symbolic_sizes_flow():
    with gx.backend("shape"):
        x = gx.empty(gx.SymInt(4, "B"), 3, requires_grad=True)
        idx = gx.empty(5, dtype=gx.int64)
    assert str(x[:, None][idx].shape[0]) == "5"
    assert gx.stack([x, x], 1).shape[0].expr == "B"
    assert x.repeat(2, 1).shape[0].expr == "2*B"
    assert F.pad(x, (1, 1, 2, 0)).shape[0].expr == "B + 2"
    assert x.repeat_interleave(3, 0).shape[0].expr == "3*B"


# -- torch's errors ---------------------------------------------------------------------------

X = torch.randn(2, 3, 4)
ERRORS = {
    "mask_shape": (lambda t, x: x[t.ones(3, dtype=t.bool)], IndexError,
                   r"The shape of the mask \[3\] at index 0 does not match the shape of the indexed tensor "
                   r"\[2, 3, 4\] at index 0"),
    "too_many_indices": (lambda t, x: x[0, 0, 0, 0], IndexError, "too many indices for tensor of dimension 3"),
    "float_index": (lambda t, x: x[t.tensor([0.0])], IndexError,
                    "tensors used as indices must be long, int, byte or bool tensors"),
    "index_broadcast": (lambda t, x: x[t.tensor([0, 1]), t.tensor([0, 1, 2])], IndexError,
                        r"shape mismatch: indexing tensors could not be broadcast together with shapes \[2\], \[3\]"),
    "index_out_of_range": (lambda t, x: x[t.tensor([5])], IndexError,
                           "index 5 is out of bounds for dimension 0 with size 2"),
    "int_out_of_range": (lambda t, x: x[5], IndexError, "index 5 is out of bounds for dimension 0 with size 2"),
    "setitem_shape": (lambda t, x: x.__setitem__(t.tensor([0, 1]), t.zeros(5)), RuntimeError,
                      r"shape mismatch: value tensor of shape \[5\] cannot be broadcast to indexing result of shape "
                      r"\[2, 3, 4\]"),
    "setitem_slice_shape": (lambda t, x: x.__setitem__(slice(0, 1), t.zeros(5)), RuntimeError,
                            r"The expanded size of the tensor \(4\) must match the existing size \(5\) at "
                            "non-singleton dimension 2"),
    "index_put_dtype": (lambda t, x: x.index_put_((t.tensor([0]),), t.zeros(3, 4, dtype=t.float64)), RuntimeError,
                        "Index put requires the source and destination dtypes match, got Float for the destination "
                        "and Double for the source."),
    "copy_shape": (lambda t, x: x.copy_(t.zeros(5)), RuntimeError,
                   r"The size of tensor a \(4\) must match the size of tensor b \(5\) at non-singleton dimension 2"),
    "copy_broadcast_bigger": (lambda t, x: x[0, 0].copy_(t.zeros(2, 4)), RuntimeError,
                              r"output with shape \[4\] doesn't match the broadcast shape \[2, 4\]"),
    "gather_dim": (lambda t, x: x.gather(3, t.zeros(2, 3, 4, dtype=t.int64)), IndexError,
                   r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    "gather_ndim": (lambda t, x: x.gather(1, t.zeros(2, 3, dtype=t.int64)), RuntimeError,
                    "Index tensor must have the same number of dimensions as input tensor"),
    "gather_size": (lambda t, x: x.gather(1, t.zeros(3, 3, 4, dtype=t.int64)), RuntimeError,
                    r"Size does not match at dimension 0 expected index \[3, 3, 4\] to be no larger than self "
                    r"\[2, 3, 4\] apart from dimension 1"),
    "gather_index_dtype": (lambda t, x: x.gather(1, t.zeros(2, 3, 4)), RuntimeError,
                           "gather\\(\\): Expected dtype int32/int64 for index"),
    "scatter_ndim": (lambda t, x: x.scatter(1, t.zeros(2, 3, dtype=t.int64), 1.0), RuntimeError,
                     "Index tensor must have the same number of dimensions as self tensor"),
    "scatter_size": (lambda t, x: x.scatter(1, t.zeros(3, 3, 4, dtype=t.int64), t.zeros(2, 3, 4)), RuntimeError,
                     r"Expected index \[3, 3, 4\] to be no larger than self \[2, 3, 4\] apart from dimension 1 and to "
                     r"be no larger size than src \[2, 3, 4\]"),
    "scatter_dtype": (lambda t, x: x.scatter(1, t.zeros(2, 3, 4, dtype=t.int64), t.zeros(2, 3, 4, dtype=t.float64)),
                      RuntimeError, "scatter\\(\\): Expected self.dtype to be equal to src.dtype"),
    "index_select_matrix": (lambda t, x: x.index_select(0, t.zeros(2, 2, dtype=t.int64)), IndexError,
                            "index_select\\(\\): Index is supposed to be a vector"),
    "index_select_dtype": (lambda t, x: x.index_select(0, t.zeros(2)), RuntimeError,
                           "index_select\\(\\): Expected dtype int32 or int64 for index"),
    "index_add_count": (lambda t, x: x.index_add(0, t.tensor([0, 1]), t.zeros(3, 3, 4)), RuntimeError,
                        r"index_add_\(\): Number of indices \(2\) should be equal to source.size\(dim\): \(3\), "
                        "for dim: 0"),
    "index_add_shape": (lambda t, x: x.index_add(0, t.tensor([0, 1]), t.zeros(2, 3, 5)), RuntimeError,
                        r"source tensor shape must match self tensor shape, excluding the specified dimension. Got "
                        r"self.shape = \[2, 3, 4\] source.shape = \[2, 3, 5\]"),
    "masked_fill_float_mask": (lambda t, x: x.masked_fill(t.zeros(2, 3, 4), 1.0), RuntimeError,
                               "masked_fill_ only supports boolean masks, but got mask with dtype float"),
    "masked_fill_value_dim": (lambda t, x: x.masked_fill(x > 0, t.zeros(1)), RuntimeError,
                              r"masked_fill_ only supports a 0-dimensional value tensor, but got tensor with 1 "
                              r"dimension\(s\)."),
    "masked_fill_broadcast": (lambda t, x: x.masked_fill(t.ones(3, 3, 4, dtype=t.bool), 1.0), RuntimeError,
                              r"The size of tensor a \(3\) must match the size of tensor b \(2\) at non-singleton "
                              "dimension 0"),
    "masked_fill_inplace_broadcast": (lambda t, x: x.masked_fill_(t.ones(3, 3, 4, dtype=t.bool), 1.0), RuntimeError,
                                      r"The size of tensor a \(2\) must match the size of tensor b \(3\) at "
                                      "non-singleton dimension 0"),
    "masked_select_float_mask": (lambda t, x: x.masked_select(t.zeros(2, 3, 4)), RuntimeError,
                                 "masked_select: expected BoolTensor for mask"),
    "where_condition_dtype": (lambda t, x: t.where(t.zeros(2, 3, 4), x, x), RuntimeError,
                              "where expected condition to be a boolean tensor, but got a tensor with dtype Float"),
    "where_broadcast": (lambda t, x: t.where(x > 0, x, t.zeros(5)), RuntimeError,
                        r"The size of tensor a \(4\) must match the size of tensor b \(5\) at non-singleton "
                        "dimension 2"),
    "take_along_dim_ndim": (lambda t, x: t.take_along_dim(x, t.zeros(2, 3, dtype=t.int64), 1), RuntimeError,
                            r"torch.take_along_dim\(\): input and indices should have the same number of dimensions, "
                            "but got 3 dimensions for input, and 2 dimensions for indices"),
    "take_along_dim_dtype": (lambda t, x: t.take_along_dim(x, t.zeros(2, 3, 4, dtype=t.int32), 1), RuntimeError,
                             r"torch.take_along_dim\(\): dtype of indices should be Long but got Int"),
    "tril_1d": (lambda t, x: x[0, 0].tril(), RuntimeError, "tril: input tensor must have at least 2 dimensions"),
    "triu_1d": (lambda t, x: x[0, 0].triu(), RuntimeError, "triu: input tensor must have at least 2 dimensions"),
    "roll_mismatch": (lambda t, x: x.roll((1, 2), 0), RuntimeError, "shifts and dimensions must align. shifts: 2, "
                                                                      "dims:1"),
    "roll_dim": (lambda t, x: x.roll(1, 3), IndexError,
                 r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    "flip_duplicate": (lambda t, x: x.flip(0, 0), RuntimeError, "dim 0 appears multiple times in the list of dims"),
    "repeat_too_few": (lambda t, x: x.repeat(2, 2), RuntimeError,
                       "Number of dimensions of repeat dims can not be smaller than number of dimensions of tensor"),
    "repeat_negative": (lambda t, x: x.repeat(2, -1, 2), RuntimeError,
                        r"Trying to create tensor with negative dimension -3: \[4, -3, 8\]"),
    "repeat_interleave_negative": (lambda t, x: x.repeat_interleave(-1), RuntimeError, "Repeats must be non-negative"),
    "stack_sizes": (lambda t, x: t.stack([x, x[0]]), RuntimeError,
                    r"stack expects each tensor to be equal size, but got \[2, 3, 4\] at entry 0 and \[3, 4\] at "
                    "entry 1"),
    "stack_empty": (lambda t, x: t.stack([]), RuntimeError, "stack expects a non-empty TensorList"),
    "stack_dim": (lambda t, x: t.stack([x, x], 4), IndexError,
                  r"Dimension out of range \(expected to be in range of \[-4, 3\], but got 4\)"),
    "unflatten_sizes": (lambda t, x: x.unflatten(1, (2, 2)), RuntimeError,
                        r"unflatten: Provided sizes \[2, 2\] don't multiply up to the size of dim 1 \(3\) in the "
                        "input tensor"),
    "unflatten_empty": (lambda t, x: x.unflatten(1, ()), RuntimeError, "unflatten: sizes must be non-empty"),
    "movedim_count": (lambda t, x: x.movedim((0, 1), (0,)), RuntimeError,
                      r"movedim: Invalid source or destination dims: source \(\[0, 1\] dims\) should contain the same "
                      r"number of dims as destination \(\[0\] dims\)"),
    "movedim_repeated": (lambda t, x: x.movedim((0, 0), (1, 2)), RuntimeError,
                         r"movedim: repeated dim in `source` \(\[0, 0\]\)"),
    "unbind_0dim": (lambda t, x: x[0, 0, 0].unbind(0), IndexError,
                    "Dimension specified as 0 but tensor has no dimensions"),
    "pad_odd": (lambda t, x: (TF if t is torch else F).pad(x, (1, 2, 3)), RuntimeError,
                "Padding length must be divisible by 2"),
    "pad_too_long": (lambda t, x: (TF if t is torch else F).pad(x, (1,) * 8), RuntimeError,
                     "Padding length should be less than or equal to two times the input dimension but got padding "
                     "length 8 and input of dimension 3"),
    "pad_reflect_too_big": (lambda t, x: (TF if t is torch else F).pad(x, (4, 4), mode="reflect"), RuntimeError,
                            r"Argument #4: Padding size should be less than the corresponding input dimension, but "
                            r"got: padding \(4, 4\) at dimension 2 of input \[2, 3, 4\]"),
    "pad_reflect_2d_too_big": (lambda t, x: (TF if t is torch else F).pad(x[None], (1, 1, 3, 3), mode="reflect"),
                               RuntimeError, r"Argument #6: Padding size should be less than the corresponding input "
                                             r"dimension, but got: padding \(3, 3\) at dimension 2 of input "
                                             r"\[1, 2, 3, 4\]"),
    "pad_reflect_unsupported_dims": (lambda t, x: (TF if t is torch else F).pad(x[0], (1, 1, 1, 1), mode="reflect"),
                                     NotImplementedError, "Padding size 4 is not supported for 2D input tensor."),
    "pad_replicate_value": (lambda t, x: (TF if t is torch else F).pad(x, (1, 1), mode="replicate", value=1.0),
                            RuntimeError, 'Padding mode "replicate" doesn\'t take in value argument'),
    "pad_circular_wraps_twice": (lambda t, x: (TF if t is torch else F).pad(x, (5, 1), mode="circular"),
                                 RuntimeError, "Padding value causes wrapping around more than once."),
    "pad_mode": (lambda t, x: (TF if t is torch else F).pad(x, (1, 1), mode="foo"), NotImplementedError,
                 "Unrecognised padding mode foo"),
    "interpolate_nearest_align": (lambda t, x: (TF if t is torch else F).interpolate(x, scale_factor=2,
                                                                                     align_corners=True),
                                  ValueError, "align_corners option can only be set with the interpolating modes: "
                                              r"linear \| bilinear \| bicubic \| trilinear"),
    "interpolate_both": (lambda t, x: (TF if t is torch else F).interpolate(x, size=3, scale_factor=2), ValueError,
                         "only one of size or scale_factor should be defined"),
    "interpolate_neither": (lambda t, x: (TF if t is torch else F).interpolate(x), ValueError,
                            "either size or scale_factor should be defined"),
    "interpolate_size_len": (lambda t, x: (TF if t is torch else F).interpolate(x, size=(3, 3)), ValueError,
                             r"Input and output must have the same number of spatial dimensions, but got input with "
                             r"spatial dimensions of \[4\] and output size of \(3, 3\)"),
    "one_hot_dtype": (lambda t, x: (TF if t is torch else F).one_hot(x[0, 0]), RuntimeError,
                      "one_hot is only applicable to index tensor of type LongTensor."),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_match_torch(name):
    fn, exc, message = ERRORS[name]
    with pytest.raises(exc, match=message):
        fn(torch, X.clone())

    class TorchLike:
        """torch's creation functions and ops, answered by the engine (torch backend)."""

        def __getattr__(self, attr):
            if attr in ("bool", "int64", "int32", "float64"):
                return getattr(gx, attr)
            if attr in ("zeros", "ones"):
                maker = getattr(gx, attr)
                return lambda *size, dtype=None: maker(*size, dtype=dtype)
            if attr == "tensor":
                return lambda data: gx.tensor(data)
            return getattr(gx, attr)

    with gx.backend("torch"):
        x = gx.from_torch(X)
        with pytest.raises(exc, match=message):
            fn(TorchLike(), x)


@pytest.mark.parametrize("name", sorted(n for n in ERRORS if n not in {"index_out_of_range", "int_out_of_range"}))
def test_errors_on_shape_backend(name):
    """Errors that need no data are raised without data too (bounds checks of values need data)."""
    fn, exc, message = ERRORS[name]

    class ShapeTorch:
        def __getattr__(self, attr):
            if attr in ("bool", "int64", "int32", "float64"):
                return getattr(gx, attr)
            if attr in ("zeros", "ones"):
                maker = getattr(gx, attr)
                return lambda *size, dtype=None: maker(*size, dtype=dtype)
            if attr == "tensor":
                return lambda data: gx.empty(*torch.tensor(data).shape,
                                             dtype=gx.dtypes.from_name(str(torch.tensor(data).dtype)[6:]))
            return getattr(gx, attr)

    with gx.backend("shape"):
        x = gx.empty(2, 3, 4)
        with pytest.raises(exc, match=message):
            fn(ShapeTorch(), x)
