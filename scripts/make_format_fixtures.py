#!/usr/bin/python3
"""Re-makes the checkpoint-format fixtures in tests/data/formats/ (the tests only read them).

Two small random Mamba2 models, each written several ways with the same weights:

  tiny     state-spaces config and keys (backbone.embedding.weight), 1 group, float32 with
           bfloat16 norms, lm_head tied (saved as the embedding tensor itself, as mamba_ssm does)
      tiny-torch/        config.json + pytorch_model.bin  (torch.save)
      tiny-safetensors/  config.json + model.safetensors  (the same tensors)
      tiny.gguf          llama.cpp's Mamba2 layout, F16 matrices and F32 vectors, a small GPT-2
                         style tokenizer; written byte by byte below, not by lightmamba
  grouped  state-spaces config with ssm_cfg.ngroups 2, Hugging Face keys (backbone.embeddings.weight),
           float16, untied lm_head; every tensor is a view into one flat storage (storage offsets)
      grouped-torch/, grouped-safetensors/
      grouped-q8_0.gguf  matrices in Q8_0 by ggml's reference rounding, vectors F32
  bad/     damaged archives for the error tests (one defect each, named by the file)

Uses Debian's python3-torch and python3-numpy: /usr/bin/python3 scripts/make_format_fixtures.py
"""
import collections
import io
import json
import math
import os
import struct
import zipfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "formats")


def ss_config(d_model, n_layer, vocab, pad, tied, ssm):
    return {"d_model": d_model, "d_intermediate": 0, "n_layer": n_layer, "vocab_size": vocab,
            "ssm_cfg": dict({"layer": "Mamba2"}, **ssm), "attn_layer_idx": [], "attn_cfg": {},
            "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True,
            "pad_vocab_size_multiple": pad, "tie_embeddings": tied}


def random_weights(rng, d_model, n_layer, rows, d_state, headdim, ngroups, d_conv, tied, emb_key):
    """name -> float64 array, scaled like a real initialisation, every value exact in float16."""
    d_inner = 2 * d_model
    H = d_inner // headdim
    conv_dim = d_inner + 2 * ngroups * d_state
    def f16(a):
        return np.asarray(a, np.float16).astype(np.float64)
    def uniform(shape, scale):
        return f16(rng.uniform(-scale, scale, shape))
    w = collections.OrderedDict()
    w[emb_key] = uniform((rows, d_model), 1.0)
    for i in range(n_layer):
        p = f"backbone.layers.{i}."
        w[p + "norm.weight"] = f16(1 + rng.uniform(-0.1, 0.1, d_model))
        m = p + "mixer."
        w[m + "in_proj.weight"] = uniform((2 * d_inner + 2 * ngroups * d_state + H, d_model), d_model ** -0.5)
        w[m + "conv1d.weight"] = uniform((conv_dim, 1, d_conv), d_conv ** -0.5)
        w[m + "conv1d.bias"] = uniform((conv_dim,), 0.1)
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(0.1), H))
        w[m + "dt_bias"] = f16(dt + np.log(-np.expm1(-dt)))
        w[m + "A_log"] = f16(np.log(rng.uniform(1, 16, H)))
        w[m + "D"] = f16(1 + rng.uniform(-0.1, 0.1, H))
        w[m + "norm.weight"] = f16(1 + rng.uniform(-0.1, 0.1, d_inner))
        w[m + "out_proj.weight"] = uniform((d_model, d_inner), d_inner ** -0.5)
    w["backbone.norm_f.weight"] = f16(1 + rng.uniform(-0.1, 0.1, d_model))
    if not tied:
        w["lm_head.weight"] = uniform((rows, d_model), d_model ** -0.5)
    return w


# ---- safetensors, written directly (the format is a JSON header and raw little-endian data) ----

ST_DTYPE = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_model_dir(path, config, tensors, torch_format):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if torch_format:
        torch.save(tensors, os.path.join(path, "pytorch_model.bin"))
    else:
        write_safetensors(os.path.join(path, "model.safetensors"), tensors)


# ---- GGUF, written byte by byte from the specification ----

GGUF_U32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_I32 = 4, 6, 7, 8, 9, 5
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8


def gguf_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_kv(key, vtype, value):
    out = gguf_str(key) + struct.pack("<I", vtype)
    if vtype == GGUF_U32:
        return out + struct.pack("<I", value)
    if vtype == GGUF_F32:
        return out + struct.pack("<f", value)
    if vtype == GGUF_BOOL:
        return out + struct.pack("<B", value)
    if vtype == GGUF_STRING:
        return out + gguf_str(value)
    etype, items = value
    out += struct.pack("<IQ", etype, len(items))
    if etype == GGUF_STRING:
        return out + b"".join(gguf_str(s) for s in items)
    return out + b"".join(struct.pack("<i", v) for v in items)


def q8_0(x):
    """ggml's quantize_row_q8_0_ref on float32 rows: per 32 values d = max|x| / 127 (stored as
    float16), q = round-half-away(x / d) computed as x * (1 / d) in float32."""
    x = np.asarray(x, np.float32).reshape(-1, 32)
    out = bytearray()
    for blk in x:
        d = np.float32(np.max(np.abs(blk)) / np.float32(127))
        inv = np.float32(1) / d if d else np.float32(0)
        v = (blk * inv).astype(np.float64)
        q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
        out += np.float16(d).tobytes() + q.tobytes()
    return bytes(out)


def write_gguf(path, kvs, tensors, alignment):
    """kvs: [(key, type, value)]; tensors: [(name, ggml type, ne in ggml order, float array)]."""
    infos, data = b"", b""
    for name, gtype, ne, values in tensors:
        values = np.asarray(values)
        if gtype == GGML_F32:
            raw = values.astype("<f4").tobytes()
        elif gtype == GGML_F16:
            raw = values.astype("<f2").tobytes()
        else:
            raw = q8_0(values)
        data += b"\0" * (-len(data) % alignment)
        infos += gguf_str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        infos += struct.pack("<IQ", gtype, len(data))
        data += raw
    kvs = kvs + [("general.alignment", GGUF_U32, alignment)]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(gguf_kv(*kv) for kv in kvs) + infos
    head += b"\0" * (-len(head) % alignment)
    with open(path, "wb") as f:
        f.write(head + data)


def gguf_model(weights, cfg, matrix_type, emb_key, tokenizer_kvs):
    """llama.cpp's Mamba2 GGUF layout (convert_hf_to_gguf.py, Mamba2Model)."""
    d_model, n_layer, d_inner = cfg["d_model"], cfg["n_layer"], 2 * cfg["d_model"]
    ssm = cfg["ssm_cfg"]
    d_state, headdim, ngroups = ssm["d_state"], ssm["headdim"], ssm.get("ngroups", 1)
    H = d_inner // headdim
    kvs = [("general.architecture", GGUF_STRING, "mamba2"),
           ("general.name", GGUF_STRING, "fixture"),
           ("mamba2.context_length", GGUF_U32, 1 << 20),
           ("mamba2.embedding_length", GGUF_U32, d_model),
           ("mamba2.feed_forward_length", GGUF_U32, 0),
           ("mamba2.attention.head_count", GGUF_U32, 0),
           ("mamba2.block_count", GGUF_U32, n_layer),
           ("mamba2.ssm.conv_kernel", GGUF_U32, 4),
           ("mamba2.ssm.inner_size", GGUF_U32, d_inner),
           ("mamba2.ssm.state_size", GGUF_U32, d_state),
           ("mamba2.ssm.time_step_rank", GGUF_U32, H),
           ("mamba2.ssm.group_count", GGUF_U32, ngroups),
           ("mamba2.attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
           ("general.file_type", GGUF_U32, 1 if matrix_type == GGML_F16 else 7)] + tokenizer_kvs
    def vec(a):
        return np.asarray(a, np.float32)
    t = [("token_embd.weight", matrix_type, [d_model, weights[emb_key].shape[0]], weights[emb_key]),
         ("output_norm.weight", GGML_F32, [d_model], vec(weights["backbone.norm_f.weight"]))]
    if "lm_head.weight" in weights and not cfg["tie_embeddings"]:
        t.append(("output.weight", matrix_type, [d_model, weights["lm_head.weight"].shape[0]],
                  weights["lm_head.weight"]))
    for i in range(n_layer):
        m, b = f"backbone.layers.{i}.mixer.", f"blk.{i}."
        conv = weights[m + "conv1d.weight"]
        t += [(b + "attn_norm.weight", GGML_F32, [d_model], vec(weights[f"backbone.layers.{i}.norm.weight"])),
              (b + "ssm_in.weight", matrix_type, [d_model, weights[m + "in_proj.weight"].shape[0]],
               weights[m + "in_proj.weight"]),
              (b + "ssm_conv1d.weight", GGML_F32, [conv.shape[2], conv.shape[0]], vec(conv)),
              (b + "ssm_conv1d.bias", GGML_F32, [conv.shape[0]], vec(weights[m + "conv1d.bias"])),
              (b + "ssm_dt.bias", GGML_F32, [H], vec(weights[m + "dt_bias"])),
              # A = -exp(A_log), rounded once from double: the correctly rounded float32
              (b + "ssm_a", GGML_F32, [1, H], -np.exp(np.asarray(weights[m + "A_log"], np.float32).astype(np.float64))),
              (b + "ssm_d", GGML_F32, [1, H], vec(weights[m + "D"])),
              (b + "ssm_norm.weight", GGML_F32, [d_inner // ngroups, ngroups], vec(weights[m + "norm.weight"])),
              (b + "ssm_out.weight", matrix_type, [d_inner, d_model], weights[m + "out_proj.weight"])]
    return kvs, t


def byte_level_chars():
    """GPT-2's bytes_to_unicode: byte -> the character that stands for it in vocab and merges."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {}, 256
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(extra)
            extra += 1
    return out


def small_tokenizer(rows):
    """A GPT-2 style BPE vocabulary: the 256 bytes, <|endoftext|> (control), three merges, a
    user-defined two-space token, and unused padding up to the embedding's rows."""
    chars = byte_level_chars()
    tokens = [chars[b] for b in range(256)] + ["<|endoftext|>", "he", "\u0120t", "\u0120the", "  "]
    types = [1] * 256 + [3, 1, 1, 1, 4]
    merges = ["h e", "\u0120 t", "\u0120t he"]
    while len(tokens) < rows:
        types.append(5)
        tokens.append(f"[PAD{len(tokens)}]")
    return [("tokenizer.ggml.model", GGUF_STRING, "gpt2"),
            ("tokenizer.ggml.pre", GGUF_STRING, "mpt"),
            ("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, tokens)),
            ("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, types)),
            ("tokenizer.ggml.merges", GGUF_ARRAY, (GGUF_STRING, merges)),
            ("tokenizer.ggml.bos_token_id", GGUF_U32, 256),
            ("tokenizer.ggml.eos_token_id", GGUF_U32, 256)]


# ---- damaged archives ----

def bad_archives(path, config):
    """Each beside a config.json, so that lightmamba reads them as models."""
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    sd = collections.OrderedDict(w=torch.arange(8, dtype=torch.float32))
    buf = io.BytesIO()
    torch.save(sd, buf)
    good = buf.getvalue()
    zin = zipfile.ZipFile(io.BytesIO(good))
    data_name = next(n for n in zin.namelist() if n.endswith("/data/0"))
    # The storage entry holds 16 bytes, less than the 8 floats the pickle says it has.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for n in zin.namelist():
            z.writestr(n, zin.read(n)[:16] if n == data_name else zin.read(n))
    open(os.path.join(path, "storage-short.pt"), "wb").write(out.getvalue())
    # The central directory record of data/0 points its local header past the end of the file.
    raw = bytearray(good)
    name = data_name.encode()
    at = 0
    while True:
        at = raw.find(b"PK\x01\x02", at)
        n_len = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46: at + 46 + n_len] == name:
            break
        at += 4
    struct.pack_into("<I", raw, at + 42, len(raw) + 1000)
    open(os.path.join(path, "entry-out-of-range.pt"), "wb").write(bytes(raw))
    # A storage entry missing from the archive.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for n in zin.namelist():
            if n != data_name:
                z.writestr(n, zin.read(n))
    open(os.path.join(path, "storage-missing.pt"), "wb").write(out.getvalue())
    # A pickle that builds a tensor, not a dict; a dict holding an int; a tensor saved transposed.
    buf = io.BytesIO()
    torch.save(torch.zeros(2), buf)
    open(os.path.join(path, "not-a-dict.pt"), "wb").write(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"w": 3}, buf)
    open(os.path.join(path, "dict-of-int.pt"), "wb").write(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"w": torch.arange(12, dtype=torch.float32).view(3, 4).t()}, buf)
    open(os.path.join(path, "non-contiguous.pt"), "wb").write(buf.getvalue())
    # Not damaged: the same entries deflated (torch never compresses, other zip writers may).
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for n in zin.namelist():
            z.writestr(n, zin.read(n))
    open(os.path.join(path, "..", "deflated.pt"), "wb").write(out.getvalue())


def main():
    rng = np.random.default_rng(20250611)
    torch.manual_seed(0)

    # tiny: 2 layers, d_model 32, 4 heads of 16, N 8, vocab 260 padded to 272 rows.
    cfg = ss_config(32, 2, 260, 16, True, {"d_state": 8, "headdim": 16})
    w = random_weights(rng, 32, 2, 272, 8, 16, 1, 4, True, "backbone.embedding.weight")
    t = collections.OrderedDict()
    for name, a in w.items():
        dtype = torch.bfloat16 if name.endswith("norm.weight") else torch.float32
        t[name] = torch.tensor(a, dtype=dtype)
    t["lm_head.weight"] = t["backbone.embedding.weight"]  # tied, as mamba_ssm saves it
    write_model_dir(os.path.join(ROOT, "tiny-torch"), cfg, t, True)
    write_model_dir(os.path.join(ROOT, "tiny-safetensors"), cfg,
                    collections.OrderedDict((k, v) for k, v in t.items() if k != "lm_head.weight"), False)
    # The GGUF holds the values as saved (the norms rounded to bfloat16, exact in float32).
    saved = {k: v.float().numpy().astype(np.float64) for k, v in t.items()}
    kvs, gt = gguf_model(saved, cfg, GGML_F16, "backbone.embedding.weight", small_tokenizer(272))
    write_gguf(os.path.join(ROOT, "tiny.gguf"), kvs, gt, 64)

    # grouped: 2 groups, float16, untied, Hugging Face keys, all tensors views of one storage;
    # vocab 260 padded to 264 rows (room for tiny.gguf's tokenizer when converting).
    cfg = ss_config(32, 2, 260, 8, False, {"d_state": 8, "headdim": 16, "ngroups": 2, "d_conv": 4,
                                          "expand": 2, "rmsnorm": True, "norm_before_gate": False})
    w = random_weights(rng, 32, 2, 264, 8, 16, 2, 4, False, "backbone.embeddings.weight")
    flat = torch.tensor(np.concatenate([a.ravel() for a in w.values()]), dtype=torch.float16)
    t, at = collections.OrderedDict(), 0
    for name, a in w.items():
        t[name] = flat[at: at + a.size].view(*a.shape)
        at += a.size
    write_model_dir(os.path.join(ROOT, "grouped-torch"), cfg, t, True)
    write_model_dir(os.path.join(ROOT, "grouped-safetensors"), cfg,
                    collections.OrderedDict((k, v.clone()) for k, v in t.items()), False)
    kvs, gt = gguf_model(w, cfg, GGML_Q8_0, "backbone.embeddings.weight", [])
    write_gguf(os.path.join(ROOT, "grouped-q8_0.gguf"), kvs, gt, 32)

    bad_archives(os.path.join(ROOT, "bad"), cfg)


if __name__ == "__main__":
    main()
