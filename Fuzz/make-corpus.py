#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target to Fuzz/Corpus/<target>/ (a few valid and a few malformed
inputs each). Deterministic: re-running it rewrites the same files. Needs only the standard library, plus
`cryptography` for the signed control records (skipped with a note when it is missing).

The checkpoint seeds come from Tests/MiniRBTTests/Fixtures/weights (small hand-built files) and from
pickles built here with the same opcodes torch.save writes, pointing at the storages the fuzz-pickle
harness provides (keys "0"..."3", 64 bytes each).
"""
import base64, hashlib, io, json, pathlib, pickle, shutil, struct, sys, types, zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "Fuzz" / "Corpus"
FIXTURES = ROOT / "Tests" / "MiniRBTTests" / "Fixtures"


def write(target, name, data):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data.encode() if isinstance(data, str) else data)


def reset(target):
    shutil.rmtree(CORPUS / target, ignore_errors=True)


# --- event: option byte (kind = b % 3: auto, json, text; field layout = b // 3 % 6), then the value --------
reset("event")
for name, option, value in [
    ("auto-json", 0, '{"id":"e1","text":"房间很干净","text_pair":"服务很好"}'),
    ("auto-text", 0, "plain text, not JSON"),
    ("json-number-id", 1, '{"id":12345678901234567890,"text":"x"}'),
    ("json-null-text", 1, '{"text":null}'),
    ("json-array", 1, '[1,2,3]'),
    ("json-nested", 1, '{"text":"a","text_pair":{"a":[true,false,null,1.5e300]}}'),
    ("json-truncated", 1, '{"text":"abc'),
    ("json-escapes", 1, '{"text":"\\ud83d\\ude00 \\u0000 \\"q\\""}'),
    ("text-blank", 2, " \t\u3000\n"),
    ("renamed-fields", 3 * 1 + 1, '{"event_id":7,"body":"hello","context":"world"}'),
    ("cjk-fields", 3 * 4 + 0, '{"标识":"a","文本":"中文","句对":null}'),
    ("deep-nesting", 1, '{"text":"x","y":' + "[" * 200 + "]" * 200 + "}"),
]:
    write("event", name, bytes([option]) + value.encode())
write("event", "invalid-utf8", bytes([0]) + b'{"text":"\xff\xfe"}')
write("event", "empty", bytes([1]))

# --- tokenizer: option byte, max-length byte (value - 8), text [NUL pair] ---------------------------------
reset("tokenizer")
for name, option, length, text in [
    ("chinese", 0, 136, "房间很干净，服务也很热情，下次还会再来。"),
    ("pair", 0x80, 24, "酒店位置偏僻\0房间又小又吵，非常失望。"),
    ("specials", 0, 200, "[CLS] hello [SEP] [MASK][UNK][PAD] [sep]"),
    ("accents-cased", 5, 100, "Ĉu vi parolas Esperanton? Ａｃｃｅｎｔｓ naïve café Straße ﬁ"),
    ("emoji-controls", 8, 60, "😎👍🏽 \u200b\u0000\u0007\r\n\t\u2028 \U0001F600"),
    ("long-word", 0, 255, "x" * 150 + " " + "unaffable " * 5),
    ("tiny-max-length", 0x80, 9, "a b c\0d e f"),
    ("punctuation", 2, 64, "!!!...,,,???¿¡«»“”—–-_/\\@#$%^&*()[]{}"),
]:
    write("tokenizer", name, bytes([option, length]) + text.encode())
write("tokenizer", "invalid-utf8", bytes([0, 100]) + b"ab\xc3\x28\xe2\x82\xff\xf0\x9f\x98")

# --- config: config.json ----------------------------------------------------------------------------------
reset("config")
for fixture in sorted((FIXTURES / "tiny-bert").glob("*/config.json")):
    write("config", "fixture-" + fixture.parent.name, fixture.read_bytes())
for name, text in [
    ("empty-object", "{}"),
    ("heads-not-dividing", '{"hidden_size":30,"num_attention_heads":4}'),
    ("id2label-gap", '{"id2label":{"0":"a","2":"c"}}'),
    ("id2label-duplicate-index", '{"id2label":{"0":"a","00":"b"}}'),
    ("negative-sizes", '{"vocab_size":-1,"hidden_size":0}'),
    ("huge-values", '{"vocab_size":9223372036854775807,"hidden_size":9223372036854775807,"num_attention_heads":1,"layer_norm_eps":1e308}'),
    ("wrong-types", '{"hidden_size":"32","architectures":"Bert","id2label":[1]}'),
    ("not-json", "model_type: bert"),
    ("other-model", '{"model_type":"roberta","hidden_act":"swish","problem_type":"regression"}'),
]:
    write("config", name, text)

# --- safetensors: the weight fixtures ----------------------------------------------------------------------
reset("safetensors")
for fixture in sorted((FIXTURES / "weights").glob("*.safetensors")):
    write("safetensors", fixture.stem, fixture.read_bytes())


def safetensors(header, data=b""):
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


write("safetensors", "metadata-and-ints", safetensors(
    {"__metadata__": {"format": "pt"}, "ids": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]},
     "w": {"dtype": "F64", "shape": [1, 2], "data_offsets": [16, 32]}}, bytes(16) + struct.pack("<2d", 1.5, -2)))
write("safetensors", "overflowing-shape", safetensors(
    {"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}}))
write("safetensors", "zero-dim", safetensors({"w": {"dtype": "BF16", "shape": [0, 7], "data_offsets": [0, 0]}}))

# --- torch: torch.save files (zip) and bare pickles ----------------------------------------------------------
reset("torch")
for fixture in sorted((FIXTURES / "weights").glob("*.bin")) + sorted((FIXTURES / "weights").glob("*.pkl")):
    write("torch", fixture.stem, fixture.read_bytes())


# --- pickle: data.pkl for the fuzz-pickle harness ------------------------------------------------------------
reset("pickle")
for fixture in ["state-dict", "broadcast-view", "view-past-storage", "unknown-reduce", "big-endian"]:
    with zipfile.ZipFile(FIXTURES / "weights" / f"{fixture}.bin") as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        write("pickle", "fixture-" + fixture, archive.read(name))

# Fake torch modules, so the standard pickler writes the GLOBALs torch.save writes.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
sys.modules.update({"torch": torch, "torch._utils": torch_utils})
for storage in ["FloatStorage", "HalfStorage", "BFloat16Storage", "DoubleStorage", "LongStorage", "BoolStorage"]:
    cls = type(storage, (), {"__module__": "torch"})
    setattr(torch, storage, cls)


def _rebuild_tensor_v2(*args):
    raise NotImplementedError


def _rebuild_parameter(*args):
    raise NotImplementedError


for function in (_rebuild_tensor_v2, _rebuild_parameter):
    function.__module__ = "torch._utils"
    function.__qualname__ = function.__name__
    setattr(torch_utils, function.__name__, function)


class Storage:
    def __init__(self, kind, key, count):
        self.kind, self.key, self.count = kind, key, count


class TensorView:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False, __import__("collections").OrderedDict())

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


class Parameter:
    def __init__(self, tensor):
        self.tensor = tensor

    def __reduce__(self):
        return (_rebuild_parameter, (self.tensor, True, __import__("collections").OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.count)
        return None


def torch_pickle(state, protocol=2):
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=protocol).dump(state)
    return buffer.getvalue()


OrderedDict = __import__("collections").OrderedDict
f32 = Storage("FloatStorage", "0", 16)
f16 = Storage("HalfStorage", "1", 32)
bf16 = Storage("BFloat16Storage", "2", 32)
f64 = Storage("DoubleStorage", "3", 8)
write("pickle", "contiguous", torch_pickle(OrderedDict([
    ("a.weight", TensorView(f32, 0, [4, 4], [4, 1])),
    ("b.weight", TensorView(f16, 2, [3, 10], [10, 1])),
    ("c.bias", TensorView(bf16, 0, [32], [1])),
    ("d", TensorView(f64, 1, [7], [1]))])))
write("pickle", "strided-views", torch_pickle(OrderedDict([
    ("transposed", TensorView(f32, 0, [4, 4], [1, 4])),
    ("every-other", TensorView(f16, 1, [2, 3, 5], [15, 5, 1])),
    ("tied", TensorView(f32, 3, [2, 2], [8, 2])),
    ("scalar", TensorView(bf16, 5, [], []))])))
write("pickle", "protocol4-parameter", torch_pickle(OrderedDict([
    ("p", Parameter(TensorView(f32, 0, [16], [1]))),
    ("ids", TensorView(Storage("LongStorage", "3", 8), 0, [8], [1])),
    ("flag", TensorView(Storage("BoolStorage", "1", 64), 0, [8, 8], [8, 1]))]), protocol=4))
write("pickle", "past-storage", torch_pickle(OrderedDict([("w", TensorView(f32, 10, [4, 4], [4, 1]))])))
write("pickle", "bad-key", torch_pickle(OrderedDict([("w", TensorView(Storage("FloatStorage", "../x", 4), 0, [4], [1]))])))
write("pickle", "refused-global", b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.")
write("pickle", "plain-dict", pickle.dumps({"x": [1, 2.5, None, True, b"raw", ("t",)], 7: "int-key"}, protocol=2))
write("pickle", "truncated", torch_pickle(OrderedDict([("w", TensorView(f32, 0, [4], [1]))]))[:40])

# --- manifest: manifest.json ---------------------------------------------------------------------------------
reset("manifest")
manifest = {
    "format": 1, "name": "sentiment", "version": "1.0.0", "created_at": "2025-01-01T12:00:00Z",
    "files": [{"path": "config.json", "size": 840, "sha256": "ab" * 32},
              {"path": "model.safetensors", "size": 151572, "sha256": "CD" * 32}],
    "config": {"task": "sequenceClassification", "layers": 2, "hidden": 32, "heads": 4, "intermediate": 64,
               "vocab_size": 512, "labels": ["negative", "positive"]},
    "golden": [{"text": "房间很干净", "label": "positive", "logits": [-1.25, 2.5]},
               {"text": "x", "label": None, "logits": []}],
}
write("manifest", "valid", json.dumps(manifest, ensure_ascii=False, indent=2))
write("manifest", "no-files", json.dumps(dict(manifest, files=[], golden=[])))
write("manifest", "path-traversal", json.dumps(dict(manifest, files=[{"path": "../../etc/passwd", "size": 1, "sha256": ""}])))
write("manifest", "bad-name", json.dumps(dict(manifest, name="../evil", version="")))
write("manifest", "bad-date", json.dumps(dict(manifest, created_at="yesterday")))
write("manifest", "huge-numbers", json.dumps(dict(manifest, format=2**63 - 1, files=[{"path": "a", "size": -2**63, "sha256": "z"}])))
write("manifest", "fractional-seconds", json.dumps(dict(manifest, created_at="2025-01-01T12:0:0.50Z")))
write("manifest", "missing-config", json.dumps({k: v for k, v in manifest.items() if k != "config"}))

# --- control: mode byte (0 raw record, 1 payload signed by the harness, 2 payload with a forged signature) ---
reset("control")
message = {"deployment": "orders", "name": "sentiment", "version": "1.0.0", "mode": "deploy", "sequence": 1700000000000,
           "issued_at": "2025-01-01T12:00:00Z", "issued_by": "ops@example"}
payloads = {
    "deploy": message,
    "canary": dict(message, mode="canary", canary_percent=10, primary={"name": "sentiment", "version": "0.9"},
                   previous={"name": "sentiment", "version": "0.8"}),
    "canary-out-of-range": dict(message, mode="canary", canary_percent=101),
    "shadow": dict(message, mode="shadow", version="2.0-rc1", primary={"name": "sentiment", "version": "1.0.0"}),
    "rollback-bad-name": dict(message, mode="rollback", name="..", deployment="-x"),
    "unknown-mode": dict(message, mode="delete"),
    "negative-sequence": dict(message, sequence=-(2**63)),
}
for name, payload in payloads.items():
    write("control", "signed-" + name, bytes([1]) + json.dumps(payload, sort_keys=True).encode())
write("control", "forged-deploy", bytes([2]) + json.dumps(message, sort_keys=True).encode())
write("control", "raw-not-json", bytes([0]) + b"deploy sentiment 1.0.0")
write("control", "raw-missing-signature", bytes([0]) + json.dumps({"payload": "e30=", "key_id": "00"}).encode())
write("control", "raw-bad-base64", bytes([0]) + json.dumps({"payload": "%%%", "signature": "!!", "key_id": "x"}).encode())
try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)  # the harness's trusted key
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(public).digest()[:8].hex()
    for name in ["deploy", "canary", "unknown-mode"]:
        payload = json.dumps(payloads[name], sort_keys=True).encode()
        envelope = {"payload": base64.b64encode(payload).decode(), "signature": base64.b64encode(key.sign(payload)).decode(),
                    "key_id": key_id}
        write("control", "raw-signed-" + name, bytes([0]) + json.dumps(envelope, sort_keys=True).encode())
    tampered = dict(envelope, payload=base64.b64encode(payload.replace(b"delete", b"deploy")).decode())
    write("control", "raw-tampered", bytes([0]) + json.dumps(tampered, sort_keys=True).encode())
except ImportError:
    print("note: python3 'cryptography' is missing; raw signed control records not written", file=sys.stderr)

for target in sorted(p.name for p in CORPUS.iterdir()):
    print(f"{target}: {len(list((CORPUS / target).iterdir()))} seeds")
