"""The Python embedding API (sentence-transformers style) against the committed golden vectors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import vdb_core

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "golden_minilm.json").read_text())


def test_properties(embedder):
    assert embedder.dim == 384 == embedder.get_sentence_embedding_dimension()
    assert embedder.max_seq_length == 256  # from sentence_bert_config.json, not the tokenizer's 128
    assert embedder.model_id


@pytest.mark.parametrize("batch_size", [1, 64])
def test_parity_with_sentence_transformers(embedder, batch_size):
    texts = [i["text"] for i in GOLDEN["items"]]
    want = np.array([i["vector"] for i in GOLDEN["items"]], dtype=np.float32)
    got = embedder.encode(texts, batch_size=batch_size)
    assert got.dtype == np.float32 and got.shape == (len(texts), 384)
    cos = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999, texts[int(cos.argmin())]
    assert np.abs(got - want).max() <= 1e-4


def test_order_single_string_empty_and_normalisation(embedder):
    texts = ["Net revenue increased 12%.", "Cybersecurity incidents could harm us.", ""]
    batch = embedder.encode(texts)
    reverse = embedder.encode(texts[::-1])
    np.testing.assert_allclose(batch, reverse[::-1], atol=1e-6)
    one = embedder.encode(texts[1])
    assert one.shape == (384,)
    np.testing.assert_allclose(one, batch[1], atol=1e-6)
    assert embedder.encode([]).shape == (0, 384)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    # all-MiniLM-L6-v2's modules.json ends with a Normalize module, so like sentence-transformers
    # the vectors are unit length even with normalize_embeddings=False.
    modules = json.loads((Path(vdb_core.default_model_dir()) / "modules.json").read_text())
    assert any(m["type"].endswith("Normalize") for m in modules)
    raw = embedder.encode(texts, normalize_embeddings=False)
    np.testing.assert_allclose(raw, batch, atol=1e-6)


def test_the_gil_is_released_while_encoding(embedder):
    texts = ["The effective tax rate decreased due to discrete benefits."] * 400
    ticks = 0
    done = threading.Event()

    def work():
        embedder.encode(texts)
        done.set()

    t = threading.Thread(target=work)
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert ticks > 20  # the main thread kept running while Rust computed


def test_a_missing_model_folder_names_the_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(vdb_core.ModelError) as e:
        vdb_core.Embedder(tmp_path)
    assert str(tmp_path) in str(e.value)


def test_int8_mode_is_opt_in_close_to_float32_and_named(embedder):
    fast = vdb_core.Embedder(precision="int8")
    assert embedder.precision == "float32"
    assert fast.precision == "int8"
    assert fast.model_id == embedder.model_id + "+int8"
    texts = [i["text"] for i in GOLDEN["items"]]
    a, b = embedder.encode(texts), fast.encode(texts)
    assert b.shape == a.shape and b.dtype == np.float32
    assert (a * b).sum(axis=1).min() >= 0.99


def test_a_bad_precision_is_a_config_error(monkeypatch):
    with pytest.raises(vdb_core.ConfigError, match="precision must be"):
        vdb_core.Embedder(precision="fp8")
    monkeypatch.setenv("VDB_PRECISION", "int4")
    with pytest.raises(vdb_core.ConfigError, match="VDB_PRECISION"):
        vdb_core.Embedder()


def test_cpu_info_and_kernels_name_the_isa(embedder):
    info = vdb_core.cpu_info()
    assert info["cpu"] and isinstance(info["features"], list)
    assert info["f32_gemm"] in ("avx512f", "avx2-fma", "scalar")
    assert info["int8"] in ("amx-int8", "avx512-vnni", "avx2", "scalar")
    assert info["bf16"] in ("amx-bf16", "avx512-bf16", None)
    assert embedder.kernels == {"f32_gemm": info["f32_gemm"], "int8": None, "bf16": None}
    assert vdb_core.Embedder(precision="int8").kernels["int8"] == info["int8"]


def test_bf16_mode_without_avx512_bf16_is_a_config_error_naming_the_cpu():
    info = vdb_core.cpu_info()
    if info["bf16"] is not None:
        pytest.skip(f"this CPU ({info['cpu']}) has {info['bf16']}: bf16 loads instead of failing")
    with pytest.raises(vdb_core.ConfigError, match="bf16 needs AVX512-BF16 or AMX") as e:
        vdb_core.Embedder(precision="bf16")
    assert info["cpu"] in str(e.value) and "use float32 or int8" in str(e.value)


def test_bf16_mode_is_opt_in_close_to_float32_and_named(embedder):
    info = vdb_core.cpu_info()
    if info["bf16"] is None:
        pytest.skip(f"CPU lacks avx512_bf16 and amx_bf16 ({info['cpu']})")
    half = vdb_core.Embedder(precision="bfloat16")
    assert half.precision == "bf16"
    assert half.model_id == embedder.model_id + "+bf16"
    assert half.kernels == {"f32_gemm": info["f32_gemm"], "int8": None, "bf16": info["bf16"]}
    texts = [i["text"] for i in GOLDEN["items"]]
    a, b = embedder.encode(texts), half.encode(texts)
    assert b.shape == a.shape and b.dtype == np.float32
    assert 0.9999 <= (a * b).sum(axis=1).min() < 1.0


def test_the_device_is_the_cpu_unless_asked(embedder, monkeypatch):
    assert embedder.device == "cpu"
    assert vdb_core.resolved_settings()["device"] == "cpu"
    monkeypatch.setenv("VDB_DEVICE", " CPU ")
    assert vdb_core.Embedder().device == "cpu"
    monkeypatch.setenv("VDB_DEVICE", "tpu")
    with pytest.raises(vdb_core.ConfigError, match="VDB_DEVICE") as e:
        vdb_core.Embedder()
    assert e.value.kind == "invalid_config" and '"tpu"' in str(e.value)
    monkeypatch.delenv("VDB_DEVICE")
    with pytest.raises(vdb_core.ConfigError, match="device must be cpu, cuda or cuda:N"):
        vdb_core.Embedder(device="gpu")


def test_a_gpu_device_in_a_cpu_build_is_a_config_error_saying_how_to_build(monkeypatch):
    if vdb_core.CUDA_BUILT:
        pytest.skip("this vdb_core was built with the cuda feature (make cuda)")
    with pytest.raises(vdb_core.ConfigError, match="built without the cuda feature") as e:
        vdb_core.Embedder(device="cuda:0")
    assert e.value.kind == "invalid_config"
    assert "make cuda" in str(e.value) and "cuda:0" in str(e.value)
    # The environment variable reaches the same check (and float16, a GPU mode, too).
    monkeypatch.setenv("VDB_DEVICE", "cuda")
    with pytest.raises(vdb_core.ConfigError, match="built without the cuda feature"):
        vdb_core.Embedder(precision="float16")


def test_float16_is_a_gpu_mode():
    with pytest.raises(vdb_core.ConfigError, match="float16 is a GPU mode") as e:
        vdb_core.Embedder(precision="float16")
    assert e.value.kind == "invalid_config"
