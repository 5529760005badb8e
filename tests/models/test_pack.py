"""Pack validation: every way a pack can be broken fails at load with a message naming the problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models.errors import PackError
from models.manifest import read_manifest, write_manifest
from models.pack import SessionLike, load_pack, reopen_sessions
from models.runtime import Runtime, RuntimeConfig, session_options

OPTIONS = RuntimeConfig(intra_op_threads=1)
Edit = Callable[[Path, Callable[[dict[str, Any]], None]], None]


def load(folder: Path) -> Runtime:
    return Runtime.load(folder, OPTIONS)


def test_valid_pack_loads(fresh_pack: Path) -> None:
    pack = load_pack(fresh_pack, session_options(OPTIONS, 1))
    assert set(pack.heads) == {"sentiment", "emotion", "intent"}
    assert list(pack.graphs) == ["multitask"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="folder not found"):
        load(tmp_path / "nope")


def test_missing_manifest(fresh_pack: Path) -> None:
    (fresh_pack / "manifest.json").unlink()
    with pytest.raises(PackError, match=r"manifest\.json not found"):
        load(fresh_pack)


def test_manifest_not_json(fresh_pack: Path) -> None:
    (fresh_pack / "manifest.json").write_text("{not json")
    with pytest.raises(PackError, match=r"invalid manifest\.json"):
        load(fresh_pack)


def test_manifest_unknown_field(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m.update(surprise=1))
    with pytest.raises(PackError, match="surprise"):
        load(fresh_pack)


def test_manifest_wrong_type(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["heads"]["sentiment"].update(temperature="hot"))
    with pytest.raises(PackError, match=r"invalid manifest\.json.*temperature"):
        load(fresh_pack)


def test_unsupported_format_version(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m.update(format_version=99))
    with pytest.raises(PackError, match="format_version 99"):
        load(fresh_pack)


def test_missing_file(fresh_pack: Path) -> None:
    (fresh_pack / "model.onnx").unlink()
    with pytest.raises(PackError, match=r"'model\.onnx' is missing"):
        load(fresh_pack)


def test_corrupt_file_same_size_fails_sha256(fresh_pack: Path) -> None:
    path = fresh_pack / "model.onnx"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(PackError, match=r"'model\.onnx' is corrupt: sha256"):
        load(fresh_pack)


def test_truncated_file_fails_size(fresh_pack: Path) -> None:
    path = fresh_pack / "tokenizer.json"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(PackError, match=r"'tokenizer\.json' is corrupt: .* bytes"):
        load(fresh_pack)


def test_file_outside_pack(fresh_pack: Path, edit: Edit) -> None:
    shutil.copy(fresh_pack / "tokenizer.json", fresh_pack.parent / "outside.json")
    edit(fresh_pack, lambda m: m["files"].update({"../outside.json": m["files"]["tokenizer.json"]}))
    with pytest.raises(PackError, match="points outside the pack"):
        load(fresh_pack)


def test_graph_file_not_listed(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["files"].pop("model.onnx"))
    with pytest.raises(PackError, match=r"file 'model\.onnx' is not listed in files"):
        load(fresh_pack)


def test_unknown_head_key(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["heads"].update(toxicity=m["heads"]["sentiment"]))
    with pytest.raises(PackError, match=r"unknown heads \['toxicity'\]"):
        load(fresh_pack)


def test_missing_head(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["heads"].pop("emotion"))
    with pytest.raises(PackError, match=r"missing heads \['emotion'\]"):
        load(fresh_pack)


def test_unknown_graph_key(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["heads"]["intent"].update(graph="intent_hf"))
    with pytest.raises(PackError, match="head 'intent' uses graph 'intent_hf', not in graphs"):
        load(fresh_pack)


def test_label_count_differs_from_static_output_width(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["heads"]["intent"]["labels"].append("extra_intent"))
    with pytest.raises(PackError, match="output 'intent_logits' has 6 columns but 7 labels"):
        load(fresh_pack)


def test_label_count_differs_from_symbolic_output_width(fresh_pack: Path, edit: Edit, recorder: Any) -> None:
    recorder.symbolic_outputs = True  # the static check cannot see the width: the probe run must catch it
    edit(fresh_pack, lambda m: m["heads"]["intent"]["labels"].pop())
    with pytest.raises(PackError, match=r"output 'intent_logits' has shape \[1, 6\] .* expected \[1, 5\]"):
        Runtime.load(fresh_pack, OPTIONS, session_factory=recorder)


def test_output_name_not_in_graph(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["heads"]["emotion"].update(output="emotions"))
    with pytest.raises(PackError, match="graph 'multitask' has no output 'emotions'"):
        load(fresh_pack)


def test_input_names_differ_from_graph(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["graphs"]["multitask"].update(inputs=["input_ids", "attention_mask"]))
    with pytest.raises(PackError, match=r"graph 'multitask' takes inputs .*token_type_ids.*manifest says"):
        load(fresh_pack)


def test_unsupported_input_name(fresh_pack: Path, edit: Edit) -> None:
    edit(fresh_pack, lambda m: m["graphs"]["multitask"]["inputs"].append("pixel_values"))
    with pytest.raises(PackError, match=r"unsupported inputs \['pixel_values'\]"):
        load(fresh_pack)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["heads"]["sentiment"].update(labels=["bad", "ok", "good"]), "needs labels 'positive'"),
        (lambda m: m["heads"]["intent"].update(kind="sigmoid"), "head 'intent' must be softmax"),
        (lambda m: m["heads"]["sentiment"].update(temperature=0), "temperature must be > 0"),
        (lambda m: m["heads"]["emotion"].update(thresholds={"rage": 0.5}), r"unknown labels \['rage'\]"),
        (lambda m: m["heads"]["emotion"]["labels"].__setitem__(1, "anger"), r"duplicate labels \['anger'\]"),
        (lambda m: m["heads"]["intent"].update(labels=[]), "head 'intent' has no labels"),
        (lambda m: m["graphs"].update(spare=m["graphs"]["multitask"]), "graph 'spare' serves no head"),
    ],
)
def test_inconsistent_heads(fresh_pack: Path, change: Any, message: str, edit: Edit) -> None:
    edit(fresh_pack, change)
    with pytest.raises(PackError, match=message):
        load(fresh_pack)


def test_every_problem_is_reported_at_once(fresh_pack: Path, edit: Edit) -> None:
    def change(m: dict[str, Any]) -> None:
        m["heads"]["intent"].update(kind="sigmoid")
        m["heads"]["sentiment"].update(temperature=-1)

    edit(fresh_pack, change)
    with pytest.raises(PackError) as info:
        load(fresh_pack)
    assert "head 'sentiment' temperature must be > 0" in str(info.value)
    assert "head 'intent' must be softmax" in str(info.value)


def test_valid_hash_but_invalid_onnx(fresh_pack: Path) -> None:
    (fresh_pack / "model.onnx").write_bytes(b"not an onnx model")
    write_manifest(fresh_pack, read_manifest(fresh_pack))
    with pytest.raises(PackError, match=r"graph 'multitask' \(model.onnx\) cannot be loaded"):
        load(fresh_pack)


def test_valid_hash_but_invalid_tokenizer(fresh_pack: Path) -> None:
    (fresh_pack / "tokenizer.json").write_text('{"version": "1.0"}')
    write_manifest(fresh_pack, read_manifest(fresh_pack))
    with pytest.raises(PackError, match=r"tokenizer 'tokenizer\.json' cannot be used"):
        load(fresh_pack)


def test_error_names_the_pack(fresh_pack: Path) -> None:
    (fresh_pack / "model.onnx").unlink()
    with pytest.raises(PackError) as info:
        load(fresh_pack)
    assert str(fresh_pack) in str(info.value)


def test_reopened_sessions_are_new_sessions_of_the_same_graphs(fresh_pack: Path) -> None:
    pack = load_pack(fresh_pack, session_options(OPTIONS, 1))
    reopened = reopen_sessions(pack, session_options(OPTIONS, 1))
    assert set(reopened) == set(pack.graphs)
    for key, runner in reopened.items():
        assert runner.session is not pack.graphs[key].session
        assert (runner.spec, runner.outputs, runner.input_dtypes) == (
            pack.graphs[key].spec,
            pack.graphs[key].outputs,
            pack.graphs[key].input_dtypes,
        )


def test_reopening_a_graph_that_no_longer_loads_names_it(fresh_pack: Path) -> None:
    pack = load_pack(fresh_pack, session_options(OPTIONS, 1))

    def broken(path: Path, options: object) -> SessionLike:
        raise RuntimeError(f"cannot map {path.name}")

    with pytest.raises(PackError, match=r"graph 'multitask' \(model.onnx\) cannot be loaded: cannot map"):
        reopen_sessions(pack, session_options(OPTIONS, 1), broken)
