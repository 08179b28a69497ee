"""Time the SpectroStream codec graphs per 40 ms frame: decoder fp32 vs int8, and the encoder.

Builds the codec from synthetic weights of the given size (``full`` is mrt2_small's and
mrt2_base's codec) exactly as ``mrt-bridge export`` does, streams random codes (decoder) or
audio (encoder) one frame per call through ``bridge.runtime.StatefulSession`` and prints,
per graph and thread count, p50/p99 wall milliseconds and, at one thread, the p50 CPU
milliseconds of the calling thread (which does all the work then: steadier than wall time on a
shared machine, equal to it on a quiet one), then the int8 decoder's SNR against fp32. Where
mrt-bridge's kernels run (an AVX2 CPU with FMA), the int8 decoder is also timed as the engine
runs it: ``decoder_int8_elu`` with its ELUs fused (bridge/kernels/elu_quantize.py) and
``decoder_int8_native`` with the output conv on ``NarrowConv`` as well (narrow_conv.py). The
last line is one JSON object.

    .venv/bin/python benchmarks/codec_bench.py --size full --threads 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import numpy as np
import onnxruntime as ort

from bridge import io_names
from bridge.bench import machine
from bridge.kernels import build
from bridge.kernels.elu_quantize import fuse_elu_quantize
from bridge.kernels.narrow_conv import move_narrow_convs
from bridge.runtime import StatefulSession, session_options
from onnx_export.codec_int8 import build_int8_codec_decoder, codec_snr_db
from onnx_export.spectrostream import build_codec_decoder, codec_config, synth_spectrostream_tensors
from onnx_export.spectrostream_encoder import build_codec_encoder, synth_spectrostream_encoder_tensors


def time_graph(model, threads: int, frames: int, warmup: int, library: str | None = None) -> dict:
    opts = session_options(threads)
    if library:
        opts.register_custom_ops_library(library)
    sess = StatefulSession(ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]))
    rng = np.random.default_rng(0)
    audio_in = io_names.AUDIO in sess.input_names
    wall, cpu = [], []
    for i in range(warmup + frames):
        feed = ({io_names.AUDIO: (0.1 * rng.standard_normal((1, 1920, 2))).astype(np.float32)}
                if audio_in else {io_names.CODES: rng.integers(0, 1024, (1, 12))})
        c0, t0 = time.thread_time(), time.perf_counter()
        sess.run(feed)
        if i >= warmup:
            wall.append((time.perf_counter() - t0) * 1e3)
            cpu.append((time.thread_time() - c0) * 1e3)
    out = {"p50_ms": round(float(np.percentile(wall, 50)), 2),
           "p99_ms": round(float(np.percentile(wall, 99)), 2)}
    if threads == 1:
        out["cpu_p50_ms"] = round(float(np.percentile(cpu, 50)), 2)
    return out


def native_kernels() -> str | None:
    """The kernels' library where the engine would use it for the codec here, else None."""
    isa = machine()["isa"]
    if "avx2" not in isa or "fma" not in isa:
        return None
    lib = build.library()
    return str(lib) if lib else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="full", choices=["full", "tiny"], help="codec size (default full)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op threads to time")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    args = p.parse_args()

    cfg = codec_config(args.size)
    weights = synth_spectrostream_tensors(cfg, np.random.default_rng(0))
    enc_weights = synth_spectrostream_encoder_tensors(cfg, np.random.default_rng(1))
    graphs = {"decoder_fp32": build_codec_decoder(weights, cfg),
              "decoder_int8": build_int8_codec_decoder(weights, cfg),
              "encoder_fp32": build_codec_encoder(enc_weights, cfg)}
    library, on_kernels = native_kernels(), ("decoder_int8_elu", "decoder_int8_native")
    if library:
        graphs["decoder_int8_elu"] = copy.deepcopy(graphs["decoder_int8"])
        fuse_elu_quantize(graphs["decoder_int8_elu"])
        graphs["decoder_int8_native"] = copy.deepcopy(graphs["decoder_int8_elu"])
        move_narrow_convs(graphs["decoder_int8_native"])
        graphs["encoder_fp32"] = graphs.pop("encoder_fp32")  # last, after the decoders
    result: dict = {"size": args.size, **machine(), "graphs": {}}
    for name, model in graphs.items():
        for threads in args.threads:
            r = time_graph(model, threads, args.frames, args.warmup, library if name in on_kernels else None)
            result["graphs"][f"{name}@{threads}t"] = r
            cpu = f"  cpu p50 {r['cpu_p50_ms']:7.2f} ms" if "cpu_p50_ms" in r else ""
            print(f"{name:19s} threads={threads}  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms"
                  + cpu, flush=True)
    snr = codec_snr_db(graphs["decoder_fp32"], graphs["decoder_int8"], cfg.rvq_truncation_level)
    result["decoder_int8_snr_db"] = round(snr, 2)
    print(f"decoder int8 SNR vs fp32: {snr:.2f} dB")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
