"""bridge.style.rvq against a brute-force residual nearest-neighbour reference."""

import numpy as np
import pytest

from bridge.style.rvq import rvq_decode, rvq_tokenize


def brute_force(emb: np.ndarray, codebooks: np.ndarray) -> list[int]:
    residual = emb.astype(np.float64).copy()
    tokens = []
    for book in codebooks.astype(np.float64):
        best, best_d = -1, np.inf
        for j, code in enumerate(book):
            d = float(np.sum((residual - code) ** 2))
            if d < best_d:
                best, best_d = j, d
        tokens.append(best)
        residual -= book[best]
    return tokens


def test_matches_brute_force_full_size():
    rng = np.random.default_rng(0)
    scale = (0.6 ** np.arange(12))[:, None, None]
    codebooks = (rng.normal(size=(12, 1024, 768)) * scale / np.sqrt(768)).astype(np.float32)
    embs = (rng.normal(size=(3, 768)) / np.sqrt(768)).astype(np.float32)
    tokens = rvq_tokenize(embs, codebooks)
    assert tokens.shape == (3, 12) and tokens.dtype == np.int32
    for e, t in zip(embs[:2], tokens[:2]):  # brute force is slow: two rows at full size
        assert t.tolist() == brute_force(e, codebooks)


def test_small_many_and_decode_roundtrip():
    rng = np.random.default_rng(1)
    codebooks = rng.normal(size=(4, 16, 8)).astype(np.float32)
    embs = rng.normal(size=(2, 5, 8)).astype(np.float32)
    tokens = rvq_tokenize(embs, codebooks)
    assert tokens.shape == (2, 5, 4)
    for e, t in zip(embs.reshape(-1, 8), tokens.reshape(-1, 4)):
        assert t.tolist() == brute_force(e, codebooks)
    # an embedding that is exactly a sum of codes is recovered exactly
    exact = rvq_decode(np.array([3, 1, 4, 1]), codebooks * np.array([1, .1, .01, .001])[:, None, None])
    scaled = codebooks * np.array([1, .1, .01, .001], np.float32)[:, None, None]
    assert rvq_tokenize(exact, scaled).tolist() == [3, 1, 4, 1]
    # quantization error shrinks with each level
    errs = [np.linalg.norm(embs[0, 0] - rvq_decode(tokens[0, 0, :k], codebooks[:k])) for k in (1, 4)]
    assert errs[1] < errs[0]


def test_bad_input():
    cb = np.zeros((2, 4, 3), np.float32)
    with pytest.raises(ValueError, match="embedding dim"):
        rvq_tokenize(np.zeros(5), cb)
    with pytest.raises(ValueError, match="codebooks"):
        rvq_tokenize(np.zeros(3), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="0..3"):
        rvq_decode(np.array([0, 9]), cb)
