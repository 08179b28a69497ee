"""Generate v1 chunks with upstream's own code (t5x InteractiveModel + MagentaRTT5X.generate_chunk).

Runs in the v1 oracle env (scripts/setup_v1_oracle.sh). The checkpoint is loaded by
upstream's ``model.load_pretrained_model`` and run by ``model.get_infer_fn`` exactly as
``MagentaRTT5X._llm`` does, except that the gin overrides for the size (tiny widths) and
an optional activation dtype are passed through. Each chunk is produced by upstream's
``MagentaRTT5X.generate_chunk`` itself (context tokens, CFG batch of 2, seed + chunk index,
llm_to_rvq, crossfade, state update) with two stand-ins for models we do not load here:

- the style model's ``tokenize`` returns the given 12 MusicCoCa RVQ tokens (``--style``),
  so no MusicCoCa weights are needed (``--style none`` passes ``style=None``: MASK tokens);
- the codec's ``decode`` records the (1 + 50, 16) token frames it is asked to decode and
  returns either silence or, with ``--replay-audio``, waveforms decoded elsewhere (the
  MRT2 oracle's JAX SpectroStream, tests/oracle_v1/decode_audio.py), so the crossfade
  applied to them is upstream's own.

Writes an .npz: ``tokens`` (chunks, 50, 16) RVQ tokens as returned in the state,
``llm_tokens`` (chunks, 2, 800) raw decoder outputs of the CFG batch, ``encoder_inputs``
(chunks, 2, 1006), ``codec_frames`` (chunks, 51, 16) what the codec was asked to decode,
and with ``--replay-audio`` also ``audio`` (chunks, 96000, 2) float32 after crossfade.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import gin_overrides, quiet_logs


class _RecordingCodec:
    """Stand-in for upstream's SpectroStream: records decode() inputs, returns silence or replayed audio."""

    def __init__(self, real_codec, replay: np.ndarray | None):
        self.config = real_codec.config
        self.sample_rate = real_codec.sample_rate
        self.num_channels = real_codec.num_channels
        self.frames: list[np.ndarray] = []
        self._replay = replay

    def decode(self, tokens):
        from magenta_rt import audio

        tokens = np.asarray(tokens)
        index = len(self.frames)
        self.frames.append(tokens.copy())
        n = tokens.shape[0] * 1920
        if self._replay is None:
            samples = np.zeros((n, self.num_channels), np.float32)
        else:
            samples = np.array(self._replay[index], dtype=np.float32)
            if samples.shape != (n, self.num_channels):
                raise SystemExit(f"replayed chunk {index} has shape {samples.shape}, expected {(n, self.num_channels)}")
        return audio.Waveform(samples=samples, sample_rate=self.sample_rate)


class _GivenStyleTokens:
    """Stand-in for upstream's MusicCoCa: tokenize() returns fixed RVQ tokens."""

    def __init__(self, real_style_model, tokens: np.ndarray):
        self.config = real_style_model.config
        self._tokens = tokens

    def tokenize(self, embedding):
        return self._tokens.copy()


def _parse_style(text: str, depth: int) -> np.ndarray | None:
    if text == "none":
        return None
    values = [int(x) for x in text.split(",")]
    tokens = np.zeros((depth,), np.int32)  # levels past the 6 the LM reads are ignored upstream
    tokens[: len(values)] = values
    return tokens


def _check_restored(params, checkpoint: Path) -> None:
    """t5x silently initialises from scratch when it finds no checkpoint: prove it restored ours."""
    from flax import traverse_util

    from onnx_export.v1.checkpoint import load_params

    ours = load_params(checkpoint)
    theirs = {"/".join(k): np.asarray(v, np.float32) for k, v in traverse_util.flatten_dict(params).items()}
    if ours.keys() != theirs.keys():
        raise SystemExit(f"restored tree differs from the checkpoint: {sorted(set(ours) ^ set(theirs))[:5]}")
    bad = [k for k in ours if not np.array_equal(ours[k], theirs[k])]
    if bad:
        raise SystemExit(f"t5x restored different values for {len(bad)} parameters (first {bad[0]})")
    print(f"t5x restored all {len(ours)} parameters of {checkpoint} exactly", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--size", default="tiny", choices=["tiny", "base", "large"])
    ap.add_argument("--chunks", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=0.0)
    ap.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (t5x argmax)")
    ap.add_argument("--topk", type=int, default=40)
    ap.add_argument("--style", default="none", help="'none' or comma-separated MusicCoCa RVQ tokens (first 6 used)")
    ap.add_argument("--activation-dtype", default="float32", help="gin ACTIVATION_DTYPE (upstream default bfloat16)")
    ap.add_argument("--replay-audio", type=Path, help=".npz with 'decoded' (chunks, 51*1920, 2) to crossfade")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()

    quiet_logs()
    from magenta_rt import system
    from magenta_rt.depthformer import model as mrt_model

    from onnx_export.v1 import config as v1

    size = v1.get_size(args.size)
    mrt = system.MagentaRTT5X(
        tag="large" if size.name == "large" else "base",
        guidance_weight=args.guidance,
        temperature=args.temperature,
        topk=args.topk,
        lazy=True,
    )
    replay = np.load(args.replay_audio)["decoded"] if args.replay_audio else None
    codec = _RecordingCodec(mrt.codec, replay)
    mrt._codec = codec
    style_tokens = _parse_style(args.style, mrt.style_model.config.rvq_depth)
    if style_tokens is not None:
        mrt._style_model = _GivenStyleTokens(mrt.style_model, style_tokens)

    # MagentaRTT5X._llm, with the size's gin overrides passed to load_pretrained_model.
    batch_size, num_partitions, submesh = mrt._device_params
    with tempfile.TemporaryDirectory() as tmp:
        lengths, partitioner, interactive = mrt_model.load_pretrained_model(
            checkpoint_dir=str(args.checkpoint),
            size="large" if size.name == "large" else "base",
            batch_size=batch_size,
            num_partitions=num_partitions,
            model_parallel_submesh=submesh,
            gin_overrides=gin_overrides(size, args.activation_dtype),
            output_dir=tmp,
        )
        infer = mrt_model.get_infer_fn(
            interactive_model=interactive,
            partitioner=partitioner,
            batch_size=batch_size,
            task_feature_lengths=lengths,
            default_guidance_weight=args.guidance,
            default_temperature=args.temperature,
            default_topk=args.topk,
        )
    _check_restored(interactive.train_state.params, args.checkpoint)
    record: dict[str, list] = {"llm_tokens": [], "encoder_inputs": []}

    def recording_llm(batch, decoder_params, rng):
        out, aux = infer(batch, decoder_params, rng)
        record["encoder_inputs"].append(np.asarray(batch["encoder_input_tokens"]))
        record["llm_tokens"].append(np.asarray(out))
        return out, aux

    mrt.__dict__["_llm"] = recording_llm  # the cached_property's slot

    style = None if style_tokens is None else np.zeros((v1.STYLE_EMBED_DIM,), np.float32)
    state, tokens, chunks = None, [], []
    for _ in range(args.chunks):
        chunk, state = mrt.generate_chunk(state=state, style=style, seed=args.seed)
        tokens.append(state.context_tokens[-v1.CHUNK_FRAMES :].copy())
        chunks.append(np.asarray(chunk.samples, np.float32))
    out = {
        "tokens": np.stack(tokens).astype(np.int32),
        "llm_tokens": np.stack(record["llm_tokens"]).astype(np.int32),
        "encoder_inputs": np.stack(record["encoder_inputs"]).astype(np.int32),
        "codec_frames": np.stack(codec.frames).astype(np.int32),
        "settings": np.array(
            json.dumps({k: str(v) for k, v in vars(args).items() if k not in ("out", "replay_audio")})
        ),
    }
    if replay is not None:
        out["audio"] = np.stack(chunks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}: {args.chunks} chunks", file=sys.stderr)


if __name__ == "__main__":
    main()
