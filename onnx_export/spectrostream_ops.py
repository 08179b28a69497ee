"""The streaming ops the SpectroStream graphs need, on ``graph.GraphBuilder``.

Tensors are NCHW with H = time (STFT frames) and W = frequency bins. Every streaming op keeps
its state as a ``past.<name>``/``present.<name>`` pair of fixed shape (zeros initially).
Conv kernels arrive in upstream's HWIO layout (time, freq, in, out) and are stored converted,
under their checkpoint key.
"""

from __future__ import annotations

import math

import numpy as np

from .graph import GraphBuilder
from .spectrostream_config import ConvSpec


def state_name_for(key: str) -> str:
    """``params/soundstream/decoder/decoder_1/conv2d_3x3/conv`` -> ``decoder.decoder_1.conv2d_3x3``."""
    parts = key.split("/")
    if parts[0] == "params":
        parts = parts[1:]
    if parts and parts[0] == "soundstream":
        parts = parts[1:]
    if parts and parts[-1] == "conv":
        parts = parts[:-1]
    return ".".join(parts)


def conv_weight(b: GraphBuilder, key: str, weights: dict[str, np.ndarray],
                transpose: bool) -> tuple[str, str]:
    """Store a HWIO kernel as OIHW (Conv) or flipped IOHW (ConvTranspose) plus its bias."""
    k = np.asarray(weights[key + "/kernel"], np.float32)
    if transpose:
        # Upstream's transpose conv is a correlation over the zero-stuffed input (lhs dilation);
        # ONNX ConvTranspose scatters, so the kernel is flipped in both spatial axes.
        w = k[::-1, ::-1].transpose(2, 3, 0, 1)
    else:
        w = k.transpose(3, 2, 0, 1)
    wn = b.weight(key + "/kernel", w)
    bn = b.weight(key + "/bias", np.asarray(weights[key + "/bias"], np.float32))
    return wn, bn


def elu(b: GraphBuilder, x: str) -> str:
    """ELU (alpha 1) as ``Max(x, Exp(Min(x, 0)) - 1)``: the same values (e^m - 1 >= m, equal at
    m = x <= 0), in four ops that ORT's CPU provider runs ~1.3x faster than its Elu kernel
    (measured on the full decoder: ~1 ms per frame of 2.8 ms of ELUs)."""
    neg = b.op("Min", [x, b.const(0.0)])
    return b.op("Max", [x, b.op("Sub", [b.op("Exp", [neg]), b.const(1.0)])])


def matmul_1x1(b: GraphBuilder, x: str, spec: ConvSpec, weights: dict[str, np.ndarray]) -> str:
    """A 1x1 conv on a [1, features] vector (time and space are both 1 there)."""
    k = np.asarray(weights[spec.kernel_key], np.float32).reshape(spec.in_channels,
                                                                 spec.out_channels)
    w = b.weight(spec.kernel_key, k)
    bias = b.weight(spec.bias_key, np.asarray(weights[spec.bias_key], np.float32))
    return b.op("Add", [b.op("MatMul", [x, w]), bias])


def same_freq_padding(kernel: int, stride: int) -> tuple[int, int]:
    """Upstream conv2d()'s explicit frequency padding for a strided/unit conv."""
    pad = max(kernel - stride, 0)
    return pad // 2, pad - pad // 2


def streaming_conv(b: GraphBuilder, x: str, key: str, weights: dict[str, np.ndarray],
                   shape: tuple[int, int, int, int], stride_f: int = 1) -> tuple[str, tuple]:
    """Causal (in time) Conv2D with time stride 1; ``shape`` is x's [N, C, T, F].

    past (kt-1 frames of x) ++ x  ->  Conv(valid in time, upstream's padding in freq)
    """
    n, c, t, f = shape
    kernel = np.shape(weights[key + "/kernel"])
    kt, kf, _, cout = kernel
    w, bias = conv_weight(b, key, weights, transpose=False)
    pf = same_freq_padding(kf, stride_f)
    if kt > 1:
        name = state_name_for(key)
        past = b.state(name, np.float32, (n, c, kt - 1, f))
        x = b.op("Concat", [past, x], axis=2)
        b.set_present(name, b.slice(x, [t], [t + kt - 1], [2]))
    y = b.op("Conv", [x, w, bias], kernel_shape=[kt, kf], strides=[1, stride_f],
             pads=[0, pf[0], 0, pf[1]])
    f_out = (f + pf[0] + pf[1] - kf) // stride_f + 1
    return y, (n, cout, t, f_out)


def _transpose_same_padding(kernel: int, stride: int) -> int:
    """Left padding of upstream's 'same' transpose conv (over the zero-stuffed input)."""
    pad_amount = kernel + stride - 2
    if stride > kernel - 1:
        return kernel - 1
    return math.ceil(pad_amount / 2)


def streaming_conv_transpose(b: GraphBuilder, x: str, key: str, weights: dict[str, np.ndarray],
                             shape: tuple[int, int, int, int], strides: tuple[int, int]
                             ) -> tuple[str, tuple]:
    """Causal (in time) transpose Conv2D, overlap-adding its tail across calls.

          x --ConvTranspose(no bias)--> y [T*st + kt-st rows]
          y[:kt-st] += past            (partial sums left by the previous call)
          out = y[:T*st] + bias ;  present = y[T*st:]
    """
    n, _c, t, f = shape
    kt, kf, _, cout = np.shape(weights[key + "/kernel"])
    st, sf = strides
    w, bias = conv_weight(b, key, weights, transpose=True)
    pl = _transpose_same_padding(kf, sf)
    crop_begin, crop_end = kf - 1 - pl, pl + 1 - sf
    if crop_begin < 0 or crop_end < 0:
        raise NotImplementedError(f"{key}: frequency padding {pl} not supported")
    y = b.op("ConvTranspose", [x, w], kernel_shape=[kt, kf], strides=[st, sf],
             pads=[0, crop_begin, 0, crop_end])
    rows, f_out = t * st, f * sf
    bw = max(kt - st, 0)
    if bw:
        name = state_name_for(key)
        past = b.state(name, np.float32, (n, cout, bw, f_out))
        padded = b.op("Pad", [past, b.ints([0, 0, 0, 0, 0, 0, rows + kt - st - bw, 0])])
        y = b.op("Add", [y, padded])
        b.set_present(name, b.slice(y, [rows], [rows + bw], [2]))
        y = b.slice(y, [0], [rows], [2])
    y = b.op("Add", [y, b.reshape(bias, [1, cout, 1, 1])])
    return y, (n, cout, rows, f_out)


def upsample_nearest(b: GraphBuilder, x: str, shape: tuple[int, int, int, int],
                     rate: tuple[int, int]) -> tuple[str, tuple]:
    """Repeat each time frame rate[0] times and each bin rate[1] times.

    ``Resize`` (nearest, asymmetric, floor: out[i] = in[i // rate], exact) runs ~15x faster in
    ORT's CPU provider than the equivalent Reshape/Expand/Reshape broadcast.
    """
    n, c, t, f = shape
    out = (n, c, t * rate[0], f * rate[1])
    if tuple(rate) == (1, 1):
        return x, out
    scales = b.const([1, 1, *rate], np.float32)
    y = b.op("Resize", [x, "", scales], mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return y, out


def inverse_stft_basis(frame_length: int, frame_step: int, fft_length: int,
                       num_bins: int) -> np.ndarray:
    """[2*num_bins, frame_length] matrix: (re bins ++ im bins) -> windowed IRFFT frame.

    Bins past ``num_bins`` (upstream pads the Nyquist bin) are zero; the imaginary part of
    the DC bin is ignored by a real inverse FFT. The synthesis window is upstream's
    ``inverse_stft_window_fn(frame_step, hann_window)``.
    """
    n = np.arange(fft_length)
    k = np.arange(num_bins)
    theta = 2.0 * np.pi * np.outer(k, n) / fft_length
    scale = np.where(k == 0, 1.0, 2.0)[:, None] / fft_length
    if 2 * (num_bins - 1) >= fft_length:
        raise ValueError("num_bins must stay below the Nyquist bin")
    re = np.cos(theta) * scale
    im = -np.sin(theta) * scale
    im[0] = 0.0
    basis = np.concatenate([re, im], axis=0)[:, :frame_length]
    # periodic Hann, then Griffin-Lim normalisation (eq. 7) as upstream.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame_length) / frame_length)
    overlaps = -(-frame_length // frame_step)
    denom = np.pad(window ** 2, (0, overlaps * frame_step - frame_length))
    denom = denom.reshape(overlaps, frame_step).sum(0)
    denom = np.tile(denom, overlaps)[:frame_length]
    synth = np.where(denom == 0.0, 0.0, window / np.where(denom == 0.0, 1.0, denom))
    return (basis * synth[None, :]).astype(np.float32)



def polyphase_transpose_kernels(w: np.ndarray, strides: tuple[int, int],
                                crop_f: tuple[int, int]
                                ) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Rewrite an ONNX ConvTranspose kernel as regular Convs with stacked phase kernels.

    ``w`` is ConvTranspose's [Cin, Cout, kt, kf] (scatter form, already flipped), ``strides``
    (st, sf), ``crop_f`` its (begin cb, end) frequency pads; no time padding (the causal tail
    is carried across calls). Output phase (pt, pf) of input cell (q, r) is ConvTranspose's
    output (q*st + pt, r*sf + pf); it reads input rows q-mt+1..q and bins r+d::

        y[q*st + pt, r*sf + pf] = sum_{m, d} x[q - m, r + d] * w[pt + m*st, pf + cb - d*sf]

    Frequency phases whose offsets d cover the same window share one Conv, so no tap is a
    structural zero (a single stacked Conv would waste 1.5x the FLOPs on the decoder's 4/2
    and 6/3 kernels). Returns, per group of consecutive frequency phases, the Conv kernel
    [n_pf*st*Cout, Cin, mt, width] (output channels ordered pf, pt, co; time taps oldest
    first, valid over mt-1 rows of input history ++ the new rows) and its frequency pads
    (begin, end), which keep the width at F.
    """
    cin, cout, kt, kf = w.shape
    st, sf = strides
    cb, ce = crop_f
    if kf - cb - ce != sf:
        raise ValueError(f"frequency crop {crop_f} does not give F*{sf} bins for kernel {kf}")
    mt = -(-kt // st)
    wt = np.asarray(w, np.float32).transpose(1, 0, 2, 3)        # [Cout, Cin, kt, kf]
    windows = []
    for pf in range(sf):
        ds = [d for d in range(-kf, kf + 1) if 0 <= pf + cb - d * sf < kf]
        windows.append((min(min(ds), 0), max(max(ds), 0)))     # pads must stay >= 0
    groups: list[list[int]] = []
    for pf in range(sf):
        if groups and windows[groups[-1][0]] == windows[pf]:
            groups[-1].append(pf)
        else:
            groups.append([pf])
    out = []
    for phases in groups:
        dmin, dmax = windows[phases[0]]
        wc = np.zeros((len(phases), st, cout, cin, mt, dmax - dmin + 1), np.float32)
        for i, pf in enumerate(phases):
            for pt in range(st):
                for m in range(mt):
                    for j in range(dmax - dmin + 1):
                        kti, kfi = pt + m * st, pf + cb - (j + dmin) * sf
                        if kti < kt and 0 <= kfi < kf:
                            wc[i, pt, :, :, mt - 1 - m, j] = wt[:, :, kti, kfi]
        out.append((wc.reshape(-1, cin, mt, dmax - dmin + 1), (-dmin, dmax)))
    return out


def depth_to_time_freq(b: GraphBuilder, y: str, shape: tuple[int, int, int, int],
                       strides: tuple[int, int]) -> tuple[str, tuple]:
    """[N, sf*st*C, T, F] (channels ordered pf, pt, c) -> [N, C, T*st, F*sf] (sub-pixel shuffle)."""
    n, cs, t, f = shape
    st, sf = strides
    c = cs // (st * sf)
    out = (n, c, t * st, f * sf)
    if st == 1 and sf == 1:
        return y, out
    if st == 1:
        y = b.op("Transpose", [b.reshape(y, [n, sf, c, t, f])], perm=[0, 2, 3, 4, 1])
    elif sf == 1:
        y = b.op("Transpose", [b.reshape(y, [n, st, c, t, f])], perm=[0, 2, 3, 1, 4])
    else:
        y = b.op("Transpose", [b.reshape(y, [n, sf, st, c, t, f])], perm=[0, 3, 4, 2, 5, 1])
    return b.reshape(y, list(out)), out


def streaming_conv_transpose_polyphase(b: GraphBuilder, x: str, key: str,
                                       weights: dict[str, np.ndarray],
                                       shape: tuple[int, int, int, int],
                                       strides: tuple[int, int], winograd: bool = False,
                                       time_major_out: bool = False) -> tuple[str, tuple]:
    """Same output as ``streaming_conv_transpose``, as regular Convs plus a sub-pixel shuffle.

          past (mt-1 rows of x) ++ x --Conv per phase group (+bias)--> Concat on channels
            [N, sf*st*Cout, T, F] --Reshape/Transpose/Reshape--> [N, Cout, T*st, F*sf]

    ORT's CPU ConvTranspose is GEMM + col2im without NCHWc blocking; as Convs it runs at
    ORT's NCHWc conv speed with the same FLOPs. The state is the last mt-1 = ceil(kt/st)-1
    input rows (zeros initially, equivalent to the scatter form's zero partial sums), so the
    streamed output is the same as ``streaming_conv_transpose``'s.

    ``winograd``: where the Convs have 3 time taps over 4 new rows (time stride 1), run them
    as Winograd F(4,3) in time (see ``streaming_conv_winograd``); the input transform is
    shared by the phase groups. ``time_major_out`` (Winograd only): return the output as
    [N, T, Cout, F*sf] (the returned shape stays the logical NCHW one), for a following
    ``streaming_conv_winograd(time_major_in=True)``; this skips two layout copies.
    """
    n, c, t, f = shape
    kt, kf, _, cout = np.shape(weights[key + "/kernel"])
    st, sf = strides
    k = np.asarray(weights[key + "/kernel"], np.float32)
    w_t = k[::-1, ::-1].transpose(2, 3, 0, 1)                   # as conv_weight(transpose=True)
    pl = _transpose_same_padding(kf, sf)
    crop = (kf - 1 - pl, pl + 1 - sf)
    if min(crop) < 0:
        raise NotImplementedError(f"{key}: frequency padding {pl} not supported")
    groups = polyphase_transpose_kernels(w_t, strides, crop)
    mt = groups[0][0].shape[2]
    bias = np.asarray(weights[key + "/bias"], np.float32)
    if mt > 1:
        name = state_name_for(key)
        past = b.state(name, np.float32, (n, c, mt - 1, f))
        x = b.op("Concat", [past, x], axis=2)
        b.set_present(name, b.slice(x, [t], [t + mt - 1], [2]))
    # Stored under the checkpoint keys (a re-layout of those tensors, like conv_weight's); with
    # several phase groups of one kernel size, as one tensor that a constant Split divides
    # (ORT folds it at session start).
    kernels = [wc for wc, _ in groups]
    biases = [np.tile(bias, wc.shape[0] // cout) for wc in kernels]
    wino = winograd and st == 1 and (mt, t) == (3, WINOGRAD_T_ROWS)
    if time_major_out and not wino:
        raise ValueError(f"{key}: time-major output needs the Winograd path")
    if wino:
        kernels, biases = map(list, zip(*(winograd_time_kernel(wc, bi)
                                          for wc, bi in zip(kernels, biases))))
    if len({wc.shape[1:] for wc in kernels}) == 1:
        wn = b.weight(key + "/kernel", np.concatenate(kernels))
        bn = b.weight(key + "/bias", np.concatenate(biases))
        if len(groups) > 1:
            sizes = b.ints([wc.shape[0] for wc in kernels])
            ws = b.multi("Split", [wn, sizes], len(groups), axis=0)
            bs = b.multi("Split", [bn, sizes], len(groups), axis=0)
        else:
            ws, bs = [wn], [bn]
    else:
        ws = [b.weight(f"{key}/kernel[phase_group{i}]", wc) for i, wc in enumerate(kernels)]
        bs = [b.weight(f"{key}/bias[phase_group{i}]", bi) for i, bi in enumerate(biases)]
    if not wino:
        ys = [b.op("Conv", [x, w, bi], kernel_shape=list(wc.shape[2:]), pads=[0, pb, 0, pe])
              for (wc, (pb, pe)), w, bi in zip(groups, ws, bs)]
        y = ys[0] if len(ys) == 1 else b.op("Concat", ys, axis=1)
        return depth_to_time_freq(b, y, (n, cout * st * sf, t, f), strides)
    v = winograd_time_input(b, x, (n, c, t + mt - 1, f))
    ys = [winograd_time_output(b, b.op("Conv", [v, w, bi], kernel_shape=list(wc.shape[2:]),
                                        group=6, pads=[0, pb, 0, pe]), n, wc.shape[0] // 6, f)
          for (wc, (pb, pe)), w, bi in zip(zip(kernels, (g[1] for g in groups)), ws, bs)]
    y = ys[0] if len(ys) == 1 else b.op("Concat", ys, axis=2)   # [N, 4, sf*Cout, F]
    out = (n, cout, t, f * sf)
    if time_major_out:
        # [N,4,sf,C,F] -> [N,4,C,F,sf]: one axis moved innermost, ORT's fast Transpose path.
        y = b.op("Transpose", [b.reshape(y, [n, t, sf, cout, f])], perm=[0, 1, 3, 4, 2])
        return b.reshape(y, [n, t, cout, f * sf]), out
    # (A single [N,4,sf,C,F] -> [N,C,4,F,sf] Transpose is ORT's generic path, ~5x slower.)
    y = b.op("Transpose", [b.reshape(y, [n, t, sf, cout, f])], perm=[0, 3, 1, 4, 2])
    return b.reshape(y, list(out)), out


def freq_space_to_depth_kernel(w: np.ndarray, phases: int, pad_begin: int
                               ) -> tuple[np.ndarray, tuple[int, int]]:
    """Rewrite a stride-1 Conv kernel [Cout, Cin, kt, kf] for a frequency space-to-depth grid.

    With x'[(ci, r), t, q] = x[ci, t, q*P + r] and y'[(co, p), t, q] = y[co, t, q*P + p]::

        y'[(co, p), t, q] = sum x'[(ci, r), t + kt, q + d] * w[co, ci, kt, P*d + r - p + pad_begin]

    Returns the kernel [Cout*P, Cin*P, kt, width] (taps d = -pad'_begin..pad'_end) and its
    frequency pads (pad'_begin, pad'_end) on the F/P grid.
    """
    cout, cin, kt, kf = w.shape
    p_ = phases
    dmin, dmax = -((pad_begin + p_ - 1) // p_), (p_ - 1 + kf - 1 - pad_begin) // p_
    w2 = np.zeros((cout, p_, cin, p_, kt, dmax - dmin + 1), np.float32)
    for p in range(p_):
        for r in range(p_):
            for j in range(dmax - dmin + 1):
                k = p_ * (j + dmin) + r - p + pad_begin
                if 0 <= k < kf:
                    w2[:, p, :, r, :, j] = w[:, :, :, k]
    return w2.reshape(cout * p_, cin * p_, kt, dmax - dmin + 1), (-dmin, dmax)


def streaming_conv_space_to_depth(b: GraphBuilder, x: str, key: str,
                                  weights: dict[str, np.ndarray],
                                  shape: tuple[int, int, int, int], phases: int
                                  ) -> tuple[str, tuple]:
    """``streaming_conv`` (time stride 1, freq stride 1) for convs with very few outputs.

    ORT's NCHWc conv pads output channels to its block (8 on AVX2, 16 on AVX-512): the
    decoder's 7x7 output conv (64 -> 2 per group) ran at a quarter of its speed. Folding
    ``phases`` adjacent bins into channels gives Cout*P outputs at ~1.7x the true FLOPs::

        past ++ x -> [N, C, T+kt-1, F] -> Reshape/Transpose -> [N, C*P, T+kt-1, F/P]
          -> Conv (re-laid-out kernel) -> [N, Cout*P, T, F/P] -> Reshape/Transpose -> [N, Cout, T, F]

    Same state (name, shape, content) as ``streaming_conv``.
    """
    n, c, t, f = shape
    kt, kf, _, cout = np.shape(weights[key + "/kernel"])
    p_ = phases
    if f % p_:
        raise ValueError(f"{key}: {f} bins not divisible by {p_} phases")
    pf = same_freq_padding(kf, 1)
    k = np.asarray(weights[key + "/kernel"], np.float32).transpose(3, 2, 0, 1)
    w2, (pb, pe) = freq_space_to_depth_kernel(k, p_, pf[0])
    w = b.weight(key + "/kernel", w2)
    bias = b.weight(key + "/bias", np.repeat(np.asarray(weights[key + "/bias"], np.float32),
                                                  p_))
    rows = t
    if kt > 1:
        name = state_name_for(key)
        past = b.state(name, np.float32, (n, c, kt - 1, f))
        x = b.op("Concat", [past, x], axis=2)
        b.set_present(name, b.slice(x, [t], [t + kt - 1], [2]))
        rows = t + kt - 1
    x = b.op("Transpose", [b.reshape(x, [n, c, rows, f // p_, p_])], perm=[0, 1, 4, 2, 3])
    x = b.reshape(x, [n, c * p_, rows, f // p_])
    y = b.op("Conv", [x, w, bias], kernel_shape=[kt, w2.shape[3]], pads=[0, pb, 0, pe])
    y = b.op("Transpose", [b.reshape(y, [n, cout, p_, t, f // p_])], perm=[0, 1, 3, 4, 2])
    return b.reshape(y, [n, cout, t, f]), (n, cout, t, f)


# Winograd F(4, 3) along time (Lavin & Gray 2015; points 0, 1, -1, 2, -2, inf): the four new
# rows of a causal 3-tap (in time) conv from its six input rows in 6 products instead of 12.
WINOGRAD_T_BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                         np.float64)
WINOGRAD_T_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
WINOGRAD_T_AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                          [0, 1, -1, 8, -8, 1]], np.float64)
WINOGRAD_T_ROWS = 4


def winograd_time_kernel(w: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conv kernel [Cout, Cin, 3, kf] + bias -> grouped (6 planes) kernel [6*Cout, Cin, 1, kf].

    The bias goes on plane 1 only: column 1 of A^T is all ones, so every output row gets it.
    """
    cout, cin, kt, kf = w.shape
    if kt != 3:
        raise ValueError(f"Winograd F(4,3) needs 3 time taps, got {kt}")
    u = np.einsum("it,octf->iocf", WINOGRAD_T_G, np.asarray(w, np.float64))
    ub = np.zeros((6, cout))
    ub[1] = bias
    return (u.reshape(6 * cout, cin, 1, kf).astype(np.float32),
            ub.reshape(6 * cout).astype(np.float32))


def winograd_time_input(b: GraphBuilder, x: str, shape: tuple[int, int, int, int],
                        time_major: bool = False) -> str:
    """[N, C, 6, F] (past ++ new rows; [N, 6, C, F] if ``time_major``) -> B^T along time
    -> [N, 6*C, 1, F] (plane-major)."""
    n, c, rows, f = shape
    if rows != 6:
        raise ValueError(f"Winograd F(4,3) needs 6 input rows, got {rows}")
    if not time_major:
        x = b.op("Transpose", [x], perm=[0, 2, 1, 3])
    xt = b.reshape(x, [n, 6, c * f])
    bt = b.weight("winograd_f43/BT", WINOGRAD_T_BT.astype(np.float32))
    return b.reshape(b.op("MatMul", [bt, xt]), [n, 6 * c, 1, f])


def winograd_time_output(b: GraphBuilder, m: str, n: int, cout: int, f: int) -> str:
    """[N, 6*Cout, 1, F] (plane-major products) -> A^T -> [N, 4 rows, Cout, F] (time-major)."""
    at = b.weight("winograd_f43/AT", WINOGRAD_T_AT.astype(np.float32))
    y = b.op("MatMul", [at, b.reshape(m, [n, 6, cout * f])])
    return b.reshape(y, [n, WINOGRAD_T_ROWS, cout, f])


def streaming_conv_winograd(b: GraphBuilder, x: str, key: str, weights: dict[str, np.ndarray],
                            shape: tuple[int, int, int, int], time_major_in: bool = False
                            ) -> tuple[str, tuple]:
    """``streaming_conv`` for 3-tap (time) kernels on 4 new rows, via Winograd F(4,3) in time.

        past (2 rows) ++ x -> [N,C,6,F] -> Transpose, MatMul(B^T) -> [N, 6*C, 1, F]
          -> Conv (group 6, kernel 1 x kf, G-transformed weights) -> MatMul(A^T) -> Transpose

    Half the conv FLOPs (6 products per 4 rows instead of 12); measured 1.3-1.5x faster per
    layer on AVX2 with ~125 dB SNR against the direct conv. Same state as ``streaming_conv``
    (stored [N, 2, C, F] with ``time_major_in``, where ``x`` is [N, T, C, F] and ``shape`` its
    logical NCHW shape); falls back to ``streaming_conv`` for other shapes.
    """
    n, c, t, f = shape
    kt, kf, _, cout = np.shape(weights[key + "/kernel"])
    if (kt, t) != (3, WINOGRAD_T_ROWS):
        if time_major_in:
            raise ValueError(f"{key}: time-major input needs the Winograd path")
        return streaming_conv(b, x, key, weights, shape)
    pf = same_freq_padding(kf, 1)
    w = np.asarray(weights[key + "/kernel"], np.float32).transpose(3, 2, 0, 1)
    u, ub = winograd_time_kernel(w, np.asarray(weights[key + "/bias"], np.float32))
    wn = b.weight(key + "/kernel", u)
    bn = b.weight(key + "/bias", ub)
    name = state_name_for(key)
    tax = 1 if time_major_in else 2
    past = b.state(name, np.float32, (n, kt - 1, c, f) if time_major_in else (n, c, kt - 1, f))
    x = b.op("Concat", [past, x], axis=tax)
    b.set_present(name, b.slice(x, [t], [t + kt - 1], [tax]))
    v = winograd_time_input(b, x, (n, c, t + kt - 1, f), time_major=time_major_in)
    m = b.op("Conv", [v, wn, bn], kernel_shape=[1, kf], group=6, pads=[0, pf[0], 0, pf[1]])
    y = winograd_time_output(b, m, n, cout, f)
    return b.op("Transpose", [y], perm=[0, 2, 1, 3]), (n, cout, t, f)
