"""Issue 27: the tokenizer and the label names inside the ONNX graph (training/graph_tokenizer.py).

Tiny models built here (no training): token ids of the string-input graph against slimtext.tokenizer on the
hostile strings (and SST-2's test split when the datasets are present), probabilities against the served path,
slimtext.load and the service on a folder without vocab.json, the onnxruntime-only example, the Triton config
checked against the fields of Triton's model_config.proto. Every real test split: bench/tokenizer_graph.py."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import slimtext
from bench.tokenizer_graph import hostile_strings
from slimtext.data import datasets_root, load_splits
from slimtext.manifest import MODEL_FILE, TEXT_MODEL_FILE, VOCAB_FILE, Accuracy, Manifest, ParamCounts
from slimtext.runtime import ModelLoadError, OnnxClassifier, TextGraphClassifier, open_classifier
from slimtext.tokenizer import Tokenizer, TokenizerConfig
from training.graph_tokenizer import (
    GraphTokenizerError,
    to_re2,
    tokenizer_nodes,
    triton_config,
    write_triton_repo,
)
from training.model import DAN, BiLSTM, FullEmbedding, KimCNN
from training.onnx_export import add_text_model, export_onnx, write_artifact

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["neg", "neu", "pos"]
TRAIN = ["a gorgeous , witty , seductive movie .", "it doesn't work : dull and lifeless", "they're great ! i'd go",
         "well-made rock'n'roll 'tis fine", "don't stop , it's fun ( really )", "日本語 café naïve 😀 ½",
         "numbers 123 and under_score", "the end -- or not ?"]
# the texts whose ids differ, and why (docs/tokenizer-graph.md): Python's "İ".lower() is "i" + U+0307 (a token of
# its own), onnxruntime's is "i"; Python lower-cases a word-final Σ to ς, onnxruntime to σ (ids differ only when
# the vocabulary holds a word with ς, as this one does); only the first contraction of a word is split off
KNOWN_DIFFERENT = {"İstanbul İİ ı", "Ελληνικά ΣΟΦΟΣ σοφός", "it's-don't"}


def _folder(tmp: Path, model: torch.nn.Module, tok: Tokenizer, name: str) -> Path:
    export_onnx(model.eval(), tmp / f"{name}.onnx")
    folder = tmp / name
    n = sum(p.numel() for p in model.parameters())
    write_artifact(folder, tmp / f"{name}.onnx", tok, name=name, kind="full", architecture="dan", dataset="tiny",
                   labels=LABELS, embedding_dim=8, accuracy=Accuracy(), embedding_compression=0.0,
                   params=ParamCounts(embedding=len(tok) * 8, embedding_full=len(tok) * 8, total=n))
    add_text_model(folder, tok)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    tok = Tokenizer.build(TokenizerConfig(max_len=12), TRAIN)
    return _folder(tmp, DAN(FullEmbedding(torch.randn(len(tok), 8)), 3, hidden=(8,)), tok, "tiny")


def _ids_session(config: TokenizerConfig, itos: list[str]) -> ort.InferenceSession:
    """The tokenizer subgraph alone: text -> input_ids, lengths."""
    nodes, inits = tokenizer_nodes(config, itos)
    graph = helper.make_graph(nodes, "tok", [helper.make_tensor_value_info("text", TensorProto.STRING, ["N"])],
                              [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"]),
                               helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid("ai.onnx.ml", 2),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 9
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _differing(sess: ort.InferenceSession, tok: Tokenizer, texts: list[str], batch: int) -> set[str]:
    from slimtext.runtime import _utf8_safe

    bad = set()
    for i in range(0, len(texts), batch):
        part = texts[i: i + batch]
        ids, lengths = sess.run(["input_ids", "lengths"], {"text": np.array(_utf8_safe(part), dtype=object)})
        want_ids, want_lengths = tok.encode_batch(part)
        for j, t in enumerate(part):
            if ids[j, : lengths[j]].tolist() != want_ids[j, : want_lengths[j]].tolist():
                bad.add(t)
        if not bad & set(part):  # the whole padded matrix, as the served model gets it
            assert ids.shape == want_ids.shape and (ids == want_ids).all() and (lengths == want_lengths).all()
    return bad


@pytest.mark.parametrize("batch", [1, 7, 512])
def test_token_ids_equal_the_python_tokenizer_on_hostile_strings(batch):
    texts = hostile_strings()
    tok = Tokenizer.build(TokenizerConfig(max_len=30), TRAIN + texts[:20])
    assert _differing(_ids_session(tok.config, tok.itos), tok, texts, batch) == KNOWN_DIFFERENT


@pytest.mark.parametrize("config", [TokenizerConfig(lowercase=False, max_len=7),
                                    TokenizerConfig(split_contractions=False, max_len=100)])
def test_other_tokenizer_settings(config):
    texts = hostile_strings()
    tok = Tokenizer.build(config, TRAIN + texts[:20] + ["\ud800 x"])  # a token no graph can hold
    known = {"İstanbul İİ ı", "Ελληνικά ΣΟΦΟΣ σοφός"} if config.lowercase else {"it's-don't"}
    known.add("\ud800 lone high")  # its token is in this vocabulary, and cannot be in a graph
    assert _differing(_ids_session(config, tok.itos), tok, texts, 64) <= known


def test_token_ids_equal_on_sst2_test():
    try:
        sst2 = load_splits(datasets_root() / "sst2")
    except (FileNotFoundError, OSError):
        pytest.skip("no SST-2 under the datasets root")
    tok = Tokenizer.build(TokenizerConfig(), sst2["train"].texts[:2000])
    assert _differing(_ids_session(tok.config, tok.itos), tok, list(sst2["test"].texts), 256) == set()


def test_patterns_re2_cannot_express_are_refused():
    for pattern in [r"\w+(?=n't)", r"(?<=a)b", r"\bword\b", r"(a)\1"]:
        with pytest.raises(GraphTokenizerError, match="tokenizer pattern"):
            to_re2(pattern)
    with pytest.raises(GraphTokenizerError, match="pads with them"):  # "<pad>" would be taken for padding
        tokenizer_nodes(TokenizerConfig(pattern=r"\S+"), ["<pad>", "<unk>"])
    # Python's Unicode \w, \s, \d in RE2 (whose own are ASCII): checked character by character in onnxruntime
    chars = ["a", "_", "é", "\u0301", "一", "٣", "½", "²", "Ⅻ", "😀", " ", "\u3000", "\x1c", "\x85", "-", "'", "\x00"]
    for escape in (r"\w", r"\s", r"\d", r"[^\w\s]"):
        graph = helper.make_graph([helper.make_node("RegexFullMatch", ["x"], ["y"], pattern=to_re2(escape))], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.STRING, ["N"])],
                                  [helper.make_tensor_value_info("y", TensorProto.BOOL, ["N"])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
        model.ir_version = 9
        got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": np.array(chars, dtype=object)})[0]
        assert got.tolist() == [bool(re.fullmatch(escape, c)) for c in chars], escape


@pytest.mark.parametrize("arch", ["dan", "cnn", "bilstm"])
def test_probabilities_and_labels_equal_the_served_model(tiny, tmp_path, arch):
    if arch == "dan":
        folder = tiny
    else:
        tok = Tokenizer.load(tiny / VOCAB_FILE)
        torch.manual_seed(1)
        emb = FullEmbedding(torch.randn(len(tok), 8))
        model = KimCNN(emb, 3, widths=(2, 3), maps=4) if arch == "cnn" else BiLSTM(emb, 3, hidden=6)
        folder = _folder(tmp_path, model, tok, arch)
    texts = [t for t in hostile_strings() if t not in KNOWN_DIFFERENT] + TRAIN
    graph, served = TextGraphClassifier(folder), OnnxClassifier(folder)
    got, want = graph.predict(texts), served.predict(texts)
    np.testing.assert_allclose(got.probs, want.probs, atol=1e-6, rtol=0)
    assert (got.lengths == want.lengths).all()
    assert graph.predict_labels(texts) == [LABELS[i] for i in want.probs.argmax(1)]


def test_manifest_records_the_file_and_its_ops(tiny):
    manifest = Manifest.load(tiny)
    tm = manifest.text_model
    assert tm is not None and tm.file == TEXT_MODEL_FILE and tm.bytes == (tiny / TEXT_MODEL_FILE).stat().st_size
    assert tm.ops == ["com.microsoft.Tokenizer"]
    model = onnx.load(str(tiny / TEXT_MODEL_FILE))
    assert [i.name for i in model.graph.input] == ["text"]

    def nodes(graph: onnx.GraphProto):  # with the If branches
        for node in graph.node:
            yield node
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from nodes(a.g)

    everything = list(nodes(model.graph))
    assert {(n.domain or "ai.onnx") for n in everything} == {"ai.onnx", "ai.onnx.ml", "com.microsoft"}
    assert {n.op_type for n in everything if n.domain == "com.microsoft"} == {"Tokenizer"}


def test_load_prefers_the_string_model_and_a_string_only_folder_loads(tiny, tmp_path):
    assert isinstance(slimtext.load(tiny)._model, TextGraphClassifier)
    assert isinstance(slimtext.load(tiny, graph_tokenizer=False)._model, OnnxClassifier)
    assert isinstance(open_classifier(tiny), OnnxClassifier)  # the service keeps model.onnx + vocab.json
    only = tmp_path / "only"
    only.mkdir()
    for name in ("manifest.json", TEXT_MODEL_FILE):
        shutil.copyfile(tiny / name, only / name)
    assert isinstance(open_classifier(only), TextGraphClassifier)
    clf = slimtext.load(only)
    texts = ["a gorgeous , witty movie", "it doesn't work"]
    np.testing.assert_allclose(clf.predict_proba(texts), OnnxClassifier(tiny).predict(texts).probs, atol=1e-6)
    assert clf.predict("they're great !")[0].label in LABELS
    assert clf.predict_proba([]).shape == (0, 3)


def test_a_changed_string_model_is_refused_naming_the_file(tiny, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny, bad)
    data = bytearray((bad / TEXT_MODEL_FILE).read_bytes())
    data[-10] ^= 1
    (bad / TEXT_MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=f"{TEXT_MODEL_FILE}: sha256"):
        TextGraphClassifier(bad)


def test_the_service_serves_a_folder_without_vocab_json(tiny, tmp_path):
    from tests.conftest import Server

    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    for name in ("manifest.json", TEXT_MODEL_FILE):
        shutil.copyfile(tiny / name, models / "tiny" / name)
    assert not (models / "tiny" / VOCAB_FILE).exists() and not (models / "tiny" / MODEL_FILE).exists()
    srv = Server(models)
    try:
        srv.wait_ready()
        texts = ["a gorgeous , witty movie", "", "it doesn't work 😀"]
        r = httpx.post(f"{srv.url}/classify", json={"texts": texts}, timeout=10)
        assert r.status_code == 200, r.text
        want = OnnxClassifier(tiny).predict(texts)
        for pred, probs, n in zip(r.json()["predictions"], want.probs, want.lengths, strict=True):
            got = [pred["probabilities"][label] for label in LABELS]
            np.testing.assert_allclose(got, probs, atol=1e-6)
            assert pred["n_tokens"] == n
    finally:
        srv.stop()


def test_example_classifies_with_onnxruntime_only(tiny):
    script = ROOT / "examples" / "classify_onnx.py"
    imported = {a.name.split(".")[0] for node in ast.walk(ast.parse(script.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom) for a in getattr(node, "names", [])}
    imported |= {node.module.split(".")[0] for node in ast.walk(ast.parse(script.read_text()))
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= {"__future__", "sys", "numpy", "onnxruntime", "annotations"}
    block = "import sys, runpy; sys.modules['slimtext'] = None; sys.argv = sys.argv[1:]; " \
            "runpy.run_path(sys.argv[0], run_name='__main__')"
    out = subprocess.run([sys.executable, "-c", block, str(script), str(tiny / TEXT_MODEL_FILE),
                          "a gorgeous movie", "dull"], capture_output=True, text=True, timeout=60, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.split("\t")[0] in LABELS for line in lines)


def _triton_schema():
    """The part of Triton's ModelConfig (model_config.proto, package inference) that config.pbtxt uses: the same
    field names, numbers and types, so text_format rejects a misspelt field, a wrong type or a wrong enum."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="model_config_subset.proto", package="inference", syntax="proto3")
    dt = fd.enum_type.add(name="DataType")
    for i, name in enumerate(["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64",
                              "TYPE_INT8", "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32",
                              "TYPE_FP64", "TYPE_STRING", "TYPE_BF16"]):
        dt.value.add(name=name, number=i)

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> descriptor_pb2.DescriptorProto:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("ModelTensorReshape", [("shape", 1, F.TYPE_INT64, rep, "")])
    dtype, reshape = ".inference.DataType", ".inference.ModelTensorReshape"
    message("ModelInput", [("name", 1, F.TYPE_STRING, opt, ""), ("data_type", 2, F.TYPE_ENUM, opt, dtype),
                           ("dims", 4, F.TYPE_INT64, rep, ""), ("reshape", 5, F.TYPE_MESSAGE, opt, reshape)])
    message("ModelOutput", [("name", 1, F.TYPE_STRING, opt, ""), ("data_type", 2, F.TYPE_ENUM, opt, dtype),
                            ("dims", 3, F.TYPE_INT64, rep, ""), ("reshape", 5, F.TYPE_MESSAGE, opt, reshape)])
    message("ModelDynamicBatching", [])
    group = message("ModelInstanceGroup", [("count", 2, F.TYPE_INT32, opt, ""),
                                           ("kind", 4, F.TYPE_ENUM, opt, ".inference.ModelInstanceGroup.Kind")])
    kind = group.enum_type.add(name="Kind")
    for i, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=i)
    message("ModelConfig", [("name", 1, F.TYPE_STRING, opt, ""), ("backend", 17, F.TYPE_STRING, opt, ""),
                            ("max_batch_size", 4, F.TYPE_INT32, opt, ""),
                            ("input", 5, F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
                            ("output", 6, F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
                            ("instance_group", 7, F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
                            ("dynamic_batching", 11, F.TYPE_MESSAGE, opt, ".inference.ModelDynamicBatching")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def test_triton_repository_matches_the_schema_and_the_graph(tiny, tmp_path):
    from google.protobuf import text_format

    folder = write_triton_repo(tmp_path / "repo", "tiny", tiny / TEXT_MODEL_FILE, n_classes=3)
    assert (folder / "1" / "model.onnx").read_bytes() == (tiny / TEXT_MODEL_FILE).read_bytes()
    config = text_format.Parse((folder / "config.pbtxt").read_text(), _triton_schema()())
    assert config.name == "tiny" and config.backend == "onnxruntime" and config.max_batch_size > 0
    with pytest.raises(text_format.ParseError):  # the schema check is real: a misspelt field fails
        text_format.Parse(triton_config("x", 3).replace("data_type", "datatype"), _triton_schema()())
    graph = onnx.load(str(folder / "1" / "model.onnx")).graph
    types = {TensorProto.STRING: "TYPE_STRING", TensorProto.FLOAT: "TYPE_FP32", TensorProto.INT64: "TYPE_INT64"}
    for declared, actual in [*zip(config.input, graph.input, strict=True), *zip(config.output, graph.output,
                                                                                  strict=True)]:
        assert declared.name == actual.name
        dtype = _triton_schema()().DESCRIPTOR.file.enum_types_by_name["DataType"].values_by_number[declared.data_type]
        assert dtype.name == types[actual.type.tensor_type.elem_type]
        shape = [d.dim_value or -1 for d in actual.type.tensor_type.shape.dim]
        # batch dimension + dims, or + reshape when given (Triton's documented reshape for [batch]-only tensors)
        assert shape[1:] == (list(declared.reshape.shape) if declared.HasField("reshape") else list(declared.dims))


def test_cli_export_with_tokenizer_and_triton(tmp_path, capsys):
    """`train` on a 40-line dataset, then `export --int8 --with-tokenizer --triton`: both folders get a string-input
    model that answers like their model.onnx, and the repository holds both."""
    from training.cli import main

    data = tmp_path / "tiny"
    data.mkdir()
    for split, n in (("train", 40), ("dev", 10), ("test", 10)):
        rows = [f"{'pos' if i % 2 else 'neg'}\t{TRAIN[i % len(TRAIN)]}" for i in range(n)]
        (data / f"{split}.tsv").write_text("label\ttext\n" + "\n".join(rows) + "\n")
    assert main(["train", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert main(["export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "models"), "--name", "t",
                 "--int8", "--with-tokenizer", "--triton", str(tmp_path / "repo")]) == 0
    assert "string input" in capsys.readouterr().out
    for name in ("t", "t-int8"):
        folder = tmp_path / "models" / name
        assert Manifest.load(folder).text_model.sha256
        got, want = TextGraphClassifier(folder).predict(TRAIN), OnnxClassifier(folder).predict(TRAIN)
        np.testing.assert_allclose(got.probs, want.probs, atol=1e-6)
        assert (tmp_path / "repo" / name / "config.pbtxt").exists()
        assert (tmp_path / "repo" / name / "1" / "model.onnx").read_bytes() == (folder / TEXT_MODEL_FILE).read_bytes()
