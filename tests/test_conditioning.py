"""The 144-int conditioning layout: offsets, masks and CFG binning (upstream's numbers)."""

import numpy as np
import pytest

from bridge import conditioning as c


def test_layout_offsets_cover_144_without_overlap():
    idx = np.zeros(c.CONDITIONING_LENGTH, int)
    idx[c.STYLE_SLICE] += 1
    idx[c.NOTES_SLICE] += 1
    for i in (c.DRUMS_INDEX, c.CFG_STYLE_INDEX, c.CFG_NOTES_INDEX, c.CFG_DRUMS_INDEX):
        idx[i] += 1
    assert (idx == 1).all()
    assert (c.STYLE_SLICE.start, c.NOTES_SLICE.start, c.DRUMS_INDEX) == (0, 12, 140)


def test_default_vector_is_masked_with_upstream_guidance():
    v = c.default_vector()
    assert (v[:141] == -1).all()
    # style 3.0 -> (3+1)/0.2 = 20, notes 1.0 -> 10, drums 1.0 -> (1+1)/1 = 2
    assert v[141:].tolist() == [20, 10, 2]


@pytest.mark.parametrize(
    "scale, expected",
    [(-1.0, 0), (-5.0, 0), (7.0, 40), (9.0, 40), (3.0, 20), (0.0, 5), (0.1, 6), (-0.9, 0), (2.9, 20), (1.3, 11)],
)
def test_cfg_bins_style_notes(scale, expected):
    # Same float arithmetic as upstream discretize_cfg: (1.3 + 1) / 0.2 = 11.4999... -> 11;
    # (0.1 + 1) / 0.2 = 5.5000...01 -> 6.
    assert c.cfg_style_notes_bin(scale) == expected


@pytest.mark.parametrize("scale, expected", [(-1.0, 0), (1.0, 2), (1.4, 2), (1.6, 3), (7.0, 8), (100.0, 8)])
def test_cfg_bins_drums(scale, expected):
    assert c.cfg_drums_bin(scale) == expected


def test_cfg_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        c.cfg_style_notes_bin(float("nan"))


def test_build_vector_places_fields():
    notes = np.full(128, -1)
    notes[60], notes[64] = c.NOTE_ONSET, c.NOTE_SUSTAIN
    v = c.build_vector(list(range(12)), notes, c.DRUMS_PLAY, 7.0, -1.0, 3.0)
    assert v[:12].tolist() == list(range(12))
    assert v[12 + 60] == 2 and v[12 + 64] == 1 and v[12 + 61] == -1
    assert v[140] == 1 and v[141:].tolist() == [40, 0, 4]
    assert v.dtype == np.int32 and v.shape == (144,)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(style_tokens=[0] * 11), "12 values"),
        (dict(style_tokens=[1024] + [0] * 11), "out of range"),
        (dict(notes=[0] * 127), "128 pitch states"),
        (dict(notes=[4] * 128), "-1..3"),
        (dict(drums=2), "drums"),
    ],
)
def test_build_vector_rejects_bad_fields(kwargs, message):
    args = dict(style_tokens=None, notes=None, drums=-1) | kwargs
    with pytest.raises(ValueError, match=message):
        c.build_vector(**args)


def test_validate_vector_names_the_bad_index():
    v = c.default_vector()
    v[143] = 9  # drums CFG has 9 bins: 0..8
    with pytest.raises(ValueError, match=r"conditioning\[143\]=9"):
        c.validate_vector(v)
    with pytest.raises(ValueError, match="shape"):
        c.validate_vector(v[:10])
