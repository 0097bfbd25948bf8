"""The model file alone: slimtext's tokenizer and the label names inside the ONNX graph (issue 27).

`build_text_model` wraps an exported network (inputs `input_ids (B, T)`, `lengths (B,)`) into a graph whose one
input is `text (N,) string` and whose outputs are `probabilities (N, C) float`, `labels (N,) string` and
`lengths (N,) int64`:

    text ──StringNormalizer(LOWER)──► lowered (N,)
         ──com.microsoft.Tokenizer(tokenexp = pre-token pattern)──► pre-tokens (N, T)   (never cut a contraction)
         ──contractions: RegexFullMatch gate, Tokenizer(separators) for the stem, Tokenizer(tokenexp) for the rest
           ──► (stem, rest) or (pre-token, "") (N, T, 2)
         ──com.microsoft.Tokenizer(tokenexp = the word pattern)──► tokens (N, W), "<pad>" where none
         ──ai.onnx.ml.LabelEncoder(vocabulary, default = <unk> id)──► ids (N, W), 0 where "<pad>"
         ──left-pack the non-pad ids, cut at max_len──► input_ids (N, T'), lengths (N,)
         ──the network──► probabilities (N, C) ──ArgMax, LabelEncoder(id → label)──► labels (N,)

Op inventory: standard ONNX (StringNormalizer, RegexFullMatch, LabelEncoder, Where, CumSum, ...) plus ONE
op from onnxruntime's own contrib domain, `com.microsoft.Tokenizer` (RE2 find-all / regex separators): ONNX has
no op that finds all regex matches in a string (StringSplit splits on one literal delimiter only), and
onnxruntime ships that op in its standard builds, so no extension library is registered. onnxruntime-extensions
is not used.

Python's `re` and RE2 differ: RE2's `\\w`, `\\s`, `\\d` and `\\b` are ASCII-only, Python's are Unicode. The
pattern is translated with explicit code-point classes computed from this Python's `re` (so `\\w` means exactly
what it means to the Python tokenizer). What stays different is listed in docs/tokenizer-graph.md and counted by
bench/tokenizer_graph.py (lower-casing of İ and final Σ, a second contraction in one word).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from slimtext.manifest import TEXT_INPUT, TEXT_OUTPUTS
from slimtext.tokenizer import DEFAULT_PATTERN, OOV_ID, PAD, PAD_ID, Tokenizer, TokenizerConfig

OPSET = 20  # RegexFullMatch is opset 20
ML_OPSET = 2  # LabelEncoder string -> int64 and int64 -> string
MS_OPSET = 1  # com.microsoft.Tokenizer
LOCALE = "C.UTF-8"  # StringNormalizer's default (en_US.UTF-8) is absent from slim Linux images: session init fails
CONTRACTION_SUFFIX = "(?:n't|'(?:s|re|ve|ll|d|m))"  # slimtext.tokenizer._CONTRACTION's second group
_PRE_TOKENS = r"'?\w+(?:[-']\w+)*|[^\w\s]"  # DEFAULT_PATTERN's words, a leading apostrophe allowed to continue
P = "tok/"  # prefix of every name this module adds to the network's graph


class GraphTokenizerError(ValueError):
    """A tokenizer setting the graph cannot reproduce."""


# --- Python's Unicode classes as RE2 classes -----------------------------------------------------------------
@functools.cache
def _python_class(escape: str) -> str:
    """The code points Python's `re` puts in `\\w` / `\\s` / `\\d`, as RE2 class ranges (no brackets)."""
    probe = re.compile(escape)
    ranges: list[tuple[int, int]] = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:  # surrogates never reach the graph (UTF-8 strings)
            continue
        if probe.match(chr(cp)):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(_class_char(a) if a == b else f"{_class_char(a)}-{_class_char(b)}" for a, b in ranges)


def _class_char(cp: int) -> str:
    """A code point inside an RE2 [...] class: the character itself when it is a plain letter or digit (a third of
    the bytes of \\x{...}), else escaped."""
    c = chr(cp)
    return c if c.isalnum() and c.isprintable() else f"\\x{{{cp:x}}}"


_CLASS_ESCAPES = {"w": r"\w", "s": r"\s", "d": r"\d"}
_UNSUPPORTED = [("(?=", "lookahead"), ("(?!", "negative lookahead"), ("(?<=", "lookbehind"),
                ("(?<!", "negative lookbehind"), ("(?P=", "named backreference")]


def to_re2(pattern: str) -> str:
    """A Python `re` pattern in RE2 syntax with Python's Unicode meaning of \\w, \\s, \\d (and \\W, \\S, \\D
    outside brackets). Raises GraphTokenizerError for what RE2 cannot express (lookaround, backreferences, \\b)."""
    for token, what in _UNSUPPORTED:
        if token in pattern:
            raise GraphTokenizerError(f"tokenizer pattern {pattern!r}: {what} has no RE2 equivalent")
    out: list[str] = []
    in_class, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            e = pattern[i + 1]
            if e.lower() in _CLASS_ESCAPES:
                ranges = _python_class(_CLASS_ESCAPES[e.lower()])
                if in_class and e.isupper():
                    raise GraphTokenizerError(f"tokenizer pattern {pattern!r}: \\{e} inside [...] is not supported")
                out.append(ranges if in_class else f"[{'^' if e.isupper() else ''}{ranges}]")
            elif e in "bB" and not in_class:
                raise GraphTokenizerError(f"tokenizer pattern {pattern!r}: \\{e} is ASCII-only in RE2")
            elif e.isdigit() and not in_class:
                raise GraphTokenizerError(f"tokenizer pattern {pattern!r}: backreferences have no RE2 equivalent")
            else:
                out.append(pattern[i: i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
            out.append(c)
            if pattern[i + 1: i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1: i + 2] == "]":  # a literal ] first in the class
                out.append("\\]")
                i += 1
        elif c == "]" and in_class:
            in_class = False
            out.append(c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


# --- the tokenizer subgraph ------------------------------------------------------------------------------------
def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, P + name)


def _has_surrogate(word: str) -> bool:
    return any(0xD800 <= ord(c) <= 0xDFFF for c in word)


def tokenizer_nodes(config: TokenizerConfig, itos: Sequence[str], text: str = TEXT_INPUT,
                    ids_out: str = "input_ids", lengths_out: str = "lengths",
                    ) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes from `text (N,) string` to `ids_out (N, T) int64` and `lengths_out (N,) int64`, exactly the arrays
    `Tokenizer.encode_batch` returns (T = the longest text's token count, at least 1, at most max_len)."""
    if len(itos) < 2 or itos[PAD_ID] != PAD:
        raise GraphTokenizerError(f"vocabulary must start with {PAD!r}")
    # a token holding a lone surrogate (possible in a Python str, not in UTF-8) cannot be stored in the graph, nor
    # ever be found in its UTF-8 input: left out (the loaders pass such a character as U+FFFD)
    keep = [i for i, w in enumerate(itos) if not _has_surrogate(w)]
    keys, values = [itos[i] for i in keep], keep
    probe = Tokenizer(config, [PAD, itos[OOV_ID]])
    if PAD in probe.tokenize(f"a {PAD} b") or " " in probe.tokenize("a b"):
        raise GraphTokenizerError(f"tokenizer pattern {config.pattern!r} can find {PAD!r} or a space as a token: the "
                                  "graph pads with them")
    if config.split_contractions:  # " " pads the pre-tokens (no token holds a space, checked above)
        keys, values = [*keys, " "], [*values, PAD_ID]
    n: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    node = helper.make_node  # "<pad>" pads the tokens: never a token itself ('<' is always a token of its own)

    # lower-casing: onnxruntime's StringNormalizer (C++ towlower in the given locale), not Python's str.lower()
    src = text
    if config.lowercase:
        n.append(node("StringNormalizer", [text], [P + "lowered"], case_change_action="LOWER", locale=LOCALE,
                      name=P + "lower"))
        src = P + "lowered"
    inits.append(_const("one", np.array([1], dtype=np.int64)))
    n += [node("Shape", [text], [P + "n"], name=P + "n"),
          node("Concat", [P + "n", P + "one"], [P + "n_1"], axis=0, name=P + "n_1")]  # (2,) [N, 1]
    pattern = to_re2(config.pattern)
    plain = [node("Tokenizer", [src], [P + "found"], domain="com.microsoft", mark=0, mincharnum=1, pad_value=PAD,
                  tokenexp=pattern, name=P + "find_all"),  # (N, T0): T0 may be 0
             node("Expand", [P + "pad", P + "n_1"], [P + "pad_col"], name=P + "pad_col"),
             node("Concat", [P + "found", P + "pad_col"], [P + "tokens_plain"], axis=1, name=P + "tokens_plain")]
    inits.append(_const("pad", np.array([[PAD]], dtype=object)))
    if not config.split_contractions:
        n += plain
        n.append(node("Identity", [P + "tokens_plain"], [P + "tokens"], name=P + "tokens"))
    else:
        # a contraction needs an apostrophe: a batch without one (most single texts) skips the contraction steps
        # (an If on the whole batch: one SST-2 text without an apostrophe, ~50 µs CPU instead of ~78 µs)
        split = _split_nodes(inits, src, config, pattern)

        def branch(nodes: list[onnx.NodeProto], result: str, name: str) -> onnx.GraphProto:
            out = P + name  # a branch's output has a name of its own (no shadowing of the If's output)
            return helper.make_graph([*nodes, node("Identity", [result], [out], name=out)], name, [],
                                     [helper.make_tensor_value_info(out, TensorProto.STRING, None)])

        inits.append(_const("zero_scalar", np.array(0, dtype=np.int64)))
        n += [node("RegexFullMatch", [src], [P + "apostrophe"], pattern="(?s).*'.*", name=P + "apostrophe"),
              node("Cast", [P + "apostrophe"], [P + "apostrophe_i"], to=TensorProto.INT64, name=P + "apostrophe_i"),
              node("ReduceSum", [P + "apostrophe_i"], [P + "apostrophes"], keepdims=0, name=P + "apostrophes"),
              node("Greater", [P + "apostrophes", P + "zero_scalar"], [P + "any_apostrophe"],
                   name=P + "any_apostrophe"),
              node("If", [P + "any_apostrophe"], [P + "tokens"], name=P + "contractions",
                   then_branch=branch(split, P + "tokens_split", "split_contractions"),
                   else_branch=branch(plain, P + "tokens_plain", "no_apostrophe"))]
    words = P + "tokens"
    inits += [_const("zero", np.array(0, dtype=np.int64)), _const("max_len", np.array([config.max_len], np.int64)),
              _const("axis1", np.array(1, dtype=np.int64)), _const("start0", np.array([0], dtype=np.int64)),
              _const("axes1", np.array([1], dtype=np.int64))]
    n += [
        node("LabelEncoder", [words], [P + "raw_ids"], domain="ai.onnx.ml", keys_strings=keys,
             values_int64s=values, default_int64=OOV_ID, name=P + "vocabulary"),  # (N, W)
        # left-pack the real tokens (id > 0: only "<pad>" has id 0) keeping their order, then cut at max_len
        node("Greater", [P + "raw_ids", P + "zero"], [P + "real"], name=P + "real"),
        node("Cast", [P + "real"], [P + "real_i"], to=TensorProto.INT64, name=P + "real_i"),
        node("CumSum", [P + "real_i", P + "axis1"], [P + "rank1"], name=P + "rank"),  # 1-based position
        node("Shape", [P + "raw_ids"], [P + "nw"], name=P + "nw"),
        node("Gather", [P + "nw", P + "one"], [P + "w"], axis=0, name=P + "w"),  # (1,) W
        node("Sub", [P + "rank1", P + "one"], [P + "rank0"], name=P + "rank0"),
        node("Where", [P + "real", P + "rank0", P + "w"], [P + "target"], name=P + "target"),  # pads -> column W
        node("Add", [P + "w", P + "one"], [P + "w1"], name=P + "w1"),
        node("Gather", [P + "nw", P + "start0"], [P + "n0"], axis=0, name=P + "n0"),
        node("Concat", [P + "n0", P + "w1"], [P + "packed_shape"], axis=0, name=P + "packed_shape"),
        node("ConstantOfShape", [P + "packed_shape"], [P + "zeros"],
             value=numpy_helper.from_array(np.array([0], dtype=np.int64)), name=P + "zeros"),
        node("ScatterElements", [P + "zeros", P + "target", P + "raw_ids"], [P + "packed"], axis=1,
             name=P + "pack"),  # (N, W+1); column W collects the pads (all 0)
        node("ReduceSum", [P + "real_i", P + "one"], [P + "count"], keepdims=0, name=P + "count"),
        node("Min", [P + "count", P + "max_len"], [lengths_out], name=P + "lengths"),  # (N,)
        node("ReduceMax", [lengths_out], [P + "longest"], keepdims=1, name=P + "longest"),
        node("Max", [P + "longest", P + "one"], [P + "t"], name=P + "t"),  # T >= 1 (a batch of empty texts)
        node("Slice", [P + "packed", P + "start0", P + "t", P + "axes1"], [ids_out], name=P + "cut"),  # (N, T)
    ]
    return n, inits


def _split_nodes(inits: list[onnx.TensorProto], src: str, config: TokenizerConfig, pattern: str,
                 ) -> list[onnx.NodeProto]:
    """Tokens (N, W), padded with "<pad>" or " " (both id 0), contractions split the Python way.

    The Python tokenizer inserts a space before a contraction suffix that follows a word character and ends at a
    word boundary ("doesn't" -> "does n't"), then finds tokens. Here: pre-tokens that never cut through a
    contraction (N, T); the few that need work (a contraction, or with the default pattern a leading apostrophe
    followed by more "'" or "-") are gathered (M,), split into their stem and the rest from the first suffix on,
    and the word pattern runs on both pieces (M, 2, K); their tokens are scattered back over their pre-token's row
    of a (N·T, 2K) table whose other rows hold the pre-token itself. Only the gathered strings go through the
    splitting ops: onnxruntime's per-string cost, not RE2, is what these ops spend.

    Only the first suffix of a pre-token is split off ("it's-don't": Python also splits "n't"); see the docs."""
    node = helper.make_node
    default = config.pattern == DEFAULT_PATTERN
    w = _python_class(r"\w")
    # default pre-tokens hold only word characters, "'" and "-": "a word character" is "not ' or -" there
    word, non_word = ("[^'\\-]", "['\\-]") if default else (f"[{w}]", f"[^{w}]")
    rest = f"(?i){CONTRACTION_SUFFIX}(?:{non_word}.*)?$"  # the suffix, then nothing or a non-word character and more
    gate = f"(?s).*{word}{rest[:-1]}"  # a suffix after a word character, at a word boundary
    # pre-tokens that are not one token of the word pattern as they stand; " " pads (never a pre-token)
    needs = f"{gate}|(?s)'.*['\\-].*" if default else "(?s)[^ ].*"
    inits += [_const("minus_one", np.array([-1], np.int64)), _const("zero1", np.array([0], np.int64)),
              _const("two", np.array([2], np.int64)), _const("space_col", np.array([[" "]], dtype=object)),
              _const("x", np.array(["x"], dtype=object)), _const("nt", np.array(["n't"], dtype=object)),
              _const("xx", np.array([["x", "x"]], dtype=object)), _const("empty", np.array("", dtype=object)),
              _const("pad_1", np.array([[PAD]], dtype=object)), _const("three", np.array([3], np.int64))]

    def first_piece(strings: str, probe: str, out: str, **attrs) -> list[onnx.NodeProto]:
        """(M,) -> Tokenizer -> the first piece of each (M,); a probe string that always yields a piece keeps
        the Tokenizer's output 2-D with a second axis >= 1 (for M = 0, or when no string yields a piece)."""
        return [node("Concat", [strings, probe], [out + "_probed"], axis=0, name=out + "_probed"),  # (M+1,)
                node("Tokenizer", [out + "_probed"], [out + "_all"], domain="com.microsoft", mark=0, mincharnum=1,
                     pad_value="", name=out + "_all", **attrs),  # (M+1, K)
                node("Slice", [out + "_all", P + "zero1", P + "minus_one", P + "zero1"], [out + "_m"],
                     name=out + "_m"),  # (M, K)
                node("Slice", [out + "_m", P + "zero1", P + "one", P + "one"], [out + "_m1"], name=out + "_m1"),
                node("Squeeze", [out + "_m1", P + "one"], [out], name=out)]  # (M,)

    return [
        node("Tokenizer", [src], [P + "pre_found"], domain="com.microsoft", mark=0, mincharnum=1, pad_value=" ",
             tokenexp=to_re2(_PRE_TOKENS if default else r"\S+"), name=P + "pre_tokens"),  # (N, T0)
        node("Expand", [P + "space_col", P + "n_1"], [P + "spaces"], name=P + "spaces"),
        node("Concat", [P + "pre_found", P + "spaces"], [P + "pre"], axis=1, name=P + "pre"),  # (N, T), T >= 1
        node("Reshape", [P + "pre", P + "minus_one"], [P + "flat"], name=P + "flat"),  # (N·T,)
        node("RegexFullMatch", [P + "flat"], [P + "needs"], pattern=needs, name=P + "needs"),
        node("NonZero", [P + "needs"], [P + "where_2d"], name=P + "where_2d"),  # (1, M)
        node("Transpose", [P + "where_2d"], [P + "where"], perm=[1, 0], name=P + "where"),  # (M, 1)
        node("Reshape", [P + "where", P + "minus_one"], [P + "picked_idx"], name=P + "picked_idx"),
        node("Gather", [P + "flat", P + "picked_idx"], [P + "picked"], axis=0, name=P + "picked"),  # (M,)
        node("Concat", [P + "picked", P + "x"], [P + "picked_x"], axis=0, name=P + "picked_x"),
        node("RegexFullMatch", [P + "picked_x"], [P + "has_suffix_x"], pattern=gate, name=P + "has_suffix_x"),
        node("Slice", [P + "has_suffix_x", P + "zero1", P + "minus_one", P + "zero1"], [P + "has_suffix"],
             name=P + "has_suffix"),  # (M,)
        # the stem: up to the first suffix (a regex separator that runs to the end); the rest: from it on
        *first_piece(P + "picked", P + "x", P + "stem_any", separators=[rest]),
        *first_piece(P + "picked", P + "nt", P + "rest_any", tokenexp=rest),
        node("Where", [P + "has_suffix", P + "stem_any", P + "picked"], [P + "stem"], name=P + "stem"),
        node("Where", [P + "has_suffix", P + "rest_any", P + "empty"], [P + "rest"], name=P + "rest"),
        node("Unsqueeze", [P + "stem", P + "one"], [P + "stem_2d"], name=P + "stem_2d"),
        node("Unsqueeze", [P + "rest", P + "one"], [P + "rest_2d"], name=P + "rest_2d"),
        node("Concat", [P + "stem_2d", P + "rest_2d", ], [P + "pieces"], axis=1, name=P + "pieces"),  # (M, 2)
        node("Concat", [P + "pieces", P + "xx"], [P + "pieces_x"], axis=0, name=P + "pieces_x"),  # (M+1, 2)
        node("Tokenizer", [P + "pieces_x"], [P + "found_x"], domain="com.microsoft", mark=0, mincharnum=1,
             pad_value=PAD, tokenexp=pattern, name=P + "find_all_pieces"),  # (M+1, 2, K), K >= 1
        node("Slice", [P + "found_x", P + "zero1", P + "minus_one", P + "zero1"], [P + "found"],
             name=P + "found"),  # (M, 2, K)
        node("Shape", [P + "found_x"], [P + "m2k"], name=P + "m2k"),  # [M+1, 2, K]
        node("Slice", [P + "m2k", P + "two", P + "three"], [P + "k"], name=P + "k"),
        node("Mul", [P + "k", P + "two"], [P + "j"], name=P + "j"),  # (1,) J = 2K
        node("Shape", [P + "picked"], [P + "m"], name=P + "m"),
        node("Concat", [P + "m", P + "j"], [P + "mj"], axis=0, name=P + "mj"),
        node("Reshape", [P + "found", P + "mj"], [P + "replacement"], name=P + "replacement"),  # (M, J)
        # the table: each pre-token, then "<pad>"s, (N·T, J); the gathered rows replaced by their tokens
        node("Sub", [P + "j", P + "one"], [P + "j_1"], name=P + "j_1"),
        node("Shape", [P + "flat"], [P + "nt_"], name=P + "nt_"),
        node("Concat", [P + "nt_", P + "j_1"], [P + "pads_shape"], axis=0, name=P + "pads_shape"),
        node("Expand", [P + "pad_1", P + "pads_shape"], [P + "pads"], name=P + "pads"),  # (N·T, J-1)
        node("Unsqueeze", [P + "flat", P + "one"], [P + "flat_2d"], name=P + "flat_2d"),
        node("Concat", [P + "flat_2d", P + "pads"], [P + "table"], axis=1, name=P + "table"),  # (N·T, J)
        node("ScatterND", [P + "table", P + "where", P + "replacement"], [P + "table_split"], name=P + "scatter"),
        node("Concat", [P + "n", P + "minus_one"], [P + "rows"], axis=0, name=P + "rows"),
        node("Reshape", [P + "table_split", P + "rows"], [P + "tokens_split"], name=P + "tokens_split"),  # (N, T·J)
    ]


# --- the whole model ---------------------------------------------------------------------------------------------
def build_text_model(network: str | Path | onnx.ModelProto, tokenizer: Tokenizer, labels: Sequence[str],
                     extra_outputs: bool = False) -> onnx.ModelProto:
    """The network (inputs input_ids, lengths; output probabilities) behind the tokenizer subgraph, with the
    label names at the end. Outputs: probabilities, labels, lengths (tokens used per text); `extra_outputs`: also
    `input_ids` (parity checks)."""
    net = network if isinstance(network, onnx.ModelProto) else onnx.load(str(network))
    net = _at_opset(net, network)
    g = net.graph
    if [i.name for i in g.input] != ["input_ids", "lengths"]:
        raise GraphTokenizerError(f"{network}: inputs {[i.name for i in g.input]}, expected input_ids, lengths")
    if "probabilities" not in [o.name for o in g.output]:
        raise GraphTokenizerError(f"{network}: no 'probabilities' output")
    tok_nodes, tok_inits = tokenizer_nodes(tokenizer.config, tokenizer.itos)
    label_nodes = [
        helper.make_node("ArgMax", ["probabilities"], [P + "best"], axis=1, keepdims=0, name=P + "argmax"),
        helper.make_node("LabelEncoder", [P + "best"], [TEXT_OUTPUTS[1]], domain="ai.onnx.ml",
                         keys_int64s=list(range(len(labels))), values_strings=list(labels), default_string="",
                         name=P + "label_names"),
    ]
    n_classes = len(labels)
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_classes]),
               helper.make_tensor_value_info(TEXT_OUTPUTS[1], TensorProto.STRING, ["N"]),
               helper.make_tensor_value_info("lengths", TensorProto.INT64, ["N"])]
    if extra_outputs:
        outputs.append(helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["N", "T"]))
    graph = helper.make_graph(
        [*tok_nodes, *g.node, *label_nodes], "slimtext_text_classifier",
        [helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, ["N"])], outputs,
        initializer=[*tok_inits, *g.initializer], value_info=list(g.value_info))
    opsets = {o.domain: o.version for o in net.opset_import}
    opsets.update({"": OPSET, "ai.onnx.ml": max(ML_OPSET, opsets.get("ai.onnx.ml", 0)), "com.microsoft": MS_OPSET})
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                              producer_name="slimtext", ir_version=net.ir_version)
    model.ir_version = max(net.ir_version, 9)
    onnx.checker.check_model(model)  # com.microsoft ops are not checked (unknown domain), the rest is
    return model


def _at_opset(net: onnx.ModelProto, source: object) -> onnx.ModelProto:
    version = next(o.version for o in net.opset_import if o.domain in ("", "ai.onnx"))
    if version == OPSET:
        return net
    if version > OPSET:
        raise GraphTokenizerError(f"{source}: opset {version} is newer than the graph's {OPSET}")
    return version_converter.convert_version(net, OPSET)


def save_text_model(path: str | Path, network: str | Path, tokenizer: Tokenizer, labels: Sequence[str]) -> int:
    """Write the string-input model (one file, no external data) to `path`; returns its size in bytes."""
    model = build_text_model(network, tokenizer, labels)
    onnx.save(model, str(path))
    return Path(path).stat().st_size


NONSTANDARD_OPS = ["com.microsoft.Tokenizer"]  # built into onnxruntime (no extension library to register)


# --- Triton ------------------------------------------------------------------------------------------------------
def triton_config(name: str, n_classes: int, max_batch_size: int = 256) -> str:
    """config.pbtxt for Triton's onnxruntime backend (fields of Triton's model_config.proto). With batching on,
    Triton's shapes are [batch] + dims: the graph's `text (N,)` is declared as dims [1] reshaped to [] (Triton's
    documented way to serve a model whose input has the batch dimension only)."""
    scalar = "dims: [ 1 ]\n    reshape: { shape: [ ] }"
    return f"""name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{TEXT_INPUT}"
    data_type: TYPE_STRING
    {scalar}
  }}
]
output [
  {{
    name: "probabilities"
    data_type: TYPE_FP32
    dims: [ {n_classes} ]
  }},
  {{
    name: "{TEXT_OUTPUTS[1]}"
    data_type: TYPE_STRING
    {scalar}
  }},
  {{
    name: "{TEXT_OUTPUTS[2]}"
    data_type: TYPE_INT64
    {scalar}
  }}
]
dynamic_batching {{ }}
instance_group [ {{ count: 1, kind: KIND_CPU }} ]
"""


def write_triton_repo(repo: str | Path, name: str, text_model: str | Path, n_classes: int,
                      version: int = 1) -> Path:
    """A Triton model repository entry: `repo/name/config.pbtxt` and `repo/name/<version>/model.onnx` (a copy of
    the string-input model). Returns the model's folder."""
    import shutil

    folder = Path(repo) / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(text_model, folder / str(version) / "model.onnx")
    (folder / "config.pbtxt").write_text(triton_config(name, n_classes))
    return folder
