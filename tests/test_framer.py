import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from neurolink.framer import Framer


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=30), st.integers(1, 16))
def test_frames_cover_every_sample_once_with_timestamps(chunks, fsz):
    total = sum(chunks)
    x = np.arange(total * 3, dtype=np.int16).reshape(total, 3)
    ts = 100.0 + np.arange(total) / 1000.0
    fr = Framer(fsz, 3, np.int16)
    out, i = [], 0
    for n in chunks:
        out += list(fr.push(x[i : i + n], ts[i : i + n]))
        i += n
    last = fr.flush()
    if last is not None:
        out.append(last)
    assert [f.seq for f in out] == list(range(len(out)))
    assert np.array_equal(np.concatenate([f.data for f in out]), x)
    starts = np.cumsum([0] + [f.data.shape[0] for f in out[:-1]])
    assert np.allclose([f.timestamp for f in out], ts[starts])
    assert all(f.data.shape[0] == fsz for f in out[:-1])


def test_irregular_stream_one_sample_per_frame():
    fr = Framer(30, 1, np.float32, regular=False)
    frames = list(fr.push(np.ones((3, 1), np.float32), np.array([1.0, 5.0, 9.0])))
    assert [f.timestamp for f in frames] == [1.0, 5.0, 9.0]
