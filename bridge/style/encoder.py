"""MusicCoCa from ONNX: text or audio -> 768-d style embedding -> 12 RVQ tokens.

Loads ``<package>/musiccoca/`` as written by ``onnx_export.musiccoca``
(``musiccoca.json`` + four ONNX graphs + the vocabulary). Pre/post-processing
follows upstream ``magenta_rt/musiccoca.py``:

* text: lower-cased, SentencePiece ids, truncated to 127, SOS id 1 in front,
  padded with 0 to 128; ``paddings`` is 0.0 on real tokens, 1.0 on padding.
* audio: mono, 16 kHz, cut into 10 s clips (hop 10 s, the last one
  zero-padded), each clip -> preprocessor -> music encoder; clip embeddings
  are averaged.
* tokens: the quantizer's output flattened, first 12 values.
* mapper (optional ``mapper.onnx``, upstream's ``embed_style(use_mapper=True)``):
  a text embedding and seed-0 Gaussian noise (``np.random.RandomState(0)``)
  in, the output L2-normalised.

Sessions are created lazily and are used from one thread at a time (the
style service's worker).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from bridge.style.audio import to_mono_16k

log = logging.getLogger(__name__)

MANIFEST = "musiccoca.json"
BYTE_TOKENIZER_OFFSET = 4  # ids 0..3: pad, sos, eos, unk; then raw UTF-8 bytes
MAPPER_NOISE_SEED = 0  # upstream's default seed (musiccoca.py, mlx_engine.cpp apply_mapper)


class ByteTokenizer:
    """Fallback when ``sentencepiece`` is not installed (synthetic models only)."""

    def encode(self, text: str) -> list[int]:
        return [BYTE_TOKENIZER_OFFSET + b for b in text.encode("utf-8")]


class SentencePieceTokenizer:
    def __init__(self, path: Path):
        try:
            import sentencepiece
        except ImportError as exc:
            raise RuntimeError("the MusicCoCa vocabulary needs `pip install sentencepiece`") from exc
        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(path))

    def encode(self, text: str) -> list[int]:
        return list(self._sp.encode(text, out_type=int))


class StyleEncoder:
    """Embeds text/audio and tokenizes embeddings with MusicCoCa ONNX graphs."""

    def __init__(self, musiccoca_dir: Path, providers: list[str] | None = None):
        self.dir = Path(musiccoca_dir)
        path = self.dir / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"no MusicCoCa in {self.dir} ({MANIFEST} missing); run "
                                    "`mrt-bridge models prepare` or use the synthetic package")
        self.info: dict = json.loads(path.read_text())
        self.embedding_dim = int(self.info["embedding_dim"])
        self.rvq_depth = int(self.info["rvq_depth"])
        self.sample_rate = int(self.info["sample_rate"])
        self.clip_samples = int(self.info["clip_samples"])
        self.synthetic = bool(self.info.get("synthetic", False))
        self._providers = providers or ["CPUExecutionProvider"]
        self._sessions: dict[str, object] = {}
        self._tokenizer: ByteTokenizer | SentencePieceTokenizer | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_package(cls, package_dir: Path, providers: list[str] | None = None) -> StyleEncoder:
        """The encoder of a model package (``<package>/musiccoca``)."""
        return cls(Path(package_dir) / "musiccoca", providers)

    def _session(self, role: str):
        if role not in self._sessions:
            import onnxruntime as ort

            path = self.dir / self.info["files"][role]
            if not path.is_file():
                raise FileNotFoundError(f"MusicCoCa {role} graph missing: {path}")
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1  # stay off the frame loop's cores
            opts.inter_op_num_threads = 1
            self._sessions[role] = ort.InferenceSession(str(path), opts, providers=self._providers)
        return self._sessions[role]

    def _tokens_of(self, text: str) -> list[int]:
        if self._tokenizer is None:
            if self.info.get("tokenizer") == "bytes":
                self._tokenizer = ByteTokenizer()
            else:
                self._tokenizer = SentencePieceTokenizer(self.dir / self.info["files"]["spm"])
        return self._tokenizer.encode(text.lower())

    def text_inputs(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Upstream's (ids, paddings) for one prompt, shape ``[max_len]`` each."""
        max_len = int(self.info["max_text_length"])
        labels = self._tokens_of(text)[: max_len - 1]
        ids = np.zeros(max_len, np.int32)
        ids[0] = int(self.info["sos_id"])
        ids[1: 1 + len(labels)] = labels
        paddings = np.ones(max_len, np.float32)
        paddings[: 1 + len(labels)] = 0.0
        return ids, paddings

    @staticmethod
    def _feed(sess, name: str, value: np.ndarray) -> dict[str, np.ndarray]:
        shape = [d if isinstance(d, int) else 1 for d in
                 next(i.shape for i in sess.get_inputs() if i.name == name)]
        return {name: value.reshape(shape)}

    def embed_text(self, text: str) -> np.ndarray:
        """768-d float32 embedding of a text prompt."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("style prompt must be a non-empty string")
        ids, paddings = self.text_inputs(text)
        with self._lock:
            sess = self._session("text_encoder")
            feeds = {**self._feed(sess, "ids", ids), **self._feed(sess, "paddings", paddings)}
            out = sess.run(None, feeds)[0]
        return self._check_embedding(out)

    @property
    def has_mapper(self) -> bool:
        """Whether the package has the text->audio mapper graph."""
        name = self.info["files"].get("mapper")
        return name is not None and (self.dir / name).is_file()

    def map_text_embedding(self, embedding: np.ndarray, seed: int = MAPPER_NOISE_SEED) -> np.ndarray:
        """Upstream's text->audio mapper: (embedding, seed-``seed`` noise) -> L2-normalised 768-d."""
        emb = self._check_embedding(embedding)
        noise = np.random.RandomState(seed).randn(emb.size).astype(np.float32)
        with self._lock:
            sess = self._session("mapper")
            names = [i.name for i in sess.get_inputs()]
            out = sess.run(None, {**self._feed(sess, names[0], emb), **self._feed(sess, names[1], noise)})[0]
        mapped = self._check_embedding(out)
        norm = np.linalg.norm(mapped)
        return mapped / norm if norm > 0 else mapped  # as mlx_engine.cpp apply_mapper

    def embed_audio(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """768-d embedding of audio (any rate/channels), averaged over 10 s clips."""
        x = to_mono_16k(samples, sample_rate, self.sample_rate)
        if x.size == 0:
            raise ValueError("audio prompt is empty")
        n = self.clip_samples
        clips = [x[i: i + n] for i in range(0, x.size, n)]
        embs = []
        with self._lock:
            prep, enc = self._session("audio_preprocessor"), self._session("music_encoder")
            prep_in = prep.get_inputs()[0].name
            enc_in = enc.get_inputs()[0].name
            for clip in clips:
                padded = np.zeros(n, np.float32)
                padded[: clip.size] = clip
                feats = prep.run(None, self._feed(prep, prep_in, padded))[0]
                embs.append(self._check_embedding(enc.run(None, {enc_in: feats})[0]))
        return np.mean(embs, axis=0).astype(np.float32)

    def tokenize(self, embedding: np.ndarray) -> np.ndarray:
        """12 int32 RVQ tokens (0..1023) of one 768-d embedding."""
        emb = self._check_embedding(embedding)
        with self._lock:
            sess = self._session("vector_quantizer")
            out = sess.run(None, self._feed(sess, sess.get_inputs()[0].name, emb))[0]
        return np.asarray(out).reshape(-1)[: self.rvq_depth].astype(np.int32)

    def _check_embedding(self, emb: np.ndarray) -> np.ndarray:
        flat = np.asarray(emb, np.float32).reshape(-1)
        if flat.size != self.embedding_dim:
            raise ValueError(f"embedding: expected {self.embedding_dim} values, got {flat.size}")
        if not np.isfinite(flat).all():
            raise ValueError("embedding contains NaN or infinite values")
        return flat
