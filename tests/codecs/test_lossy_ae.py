import json

import numpy as np

from neurolink.codecs import get_codec
from neurolink.codecs.lossy._common import MODELS_DIR
from neurolink.codecs.lossy.ae import LATENT, SEG, session


def test_onnx_models_ship_and_match_meta():
    meta = json.loads((MODELS_DIR / "ae_meta.json").read_text())
    assert meta["segment"] == SEG and meta["latent"] == LATENT
    assert "locust_tetrode_trial02" in meta["held_out"]
    z = session("ae_encoder").run(None, {"x": np.zeros((3, SEG), np.float32)})[0]
    assert z.shape == (3, LATENT)


def test_finer_step_is_more_accurate(recording):
    x, fs = recording
    frame = max(1, round(fs / 1000))
    x = x[: frame * 150]
    errs = []
    for step in (0.05, 0.8):
        enc, dec = get_codec({"id": "nl-ae", "step": step}), get_codec({"id": "nl-ae", "step": step})
        y = np.concatenate([dec.decode(enc.encode(x[i : i + frame])) for i in range(0, len(x), frame)])
        errs.append(np.mean((y.astype(float) - x) ** 2))
    assert errs[0] < errs[1]
