"""`npuc ops`: generated from the placement tables, so it must agree with what `npuc compile` does."""

from __future__ import annotations

from pathlib import Path

import pytest

import oracle
from npuc.hw.target import VIPNANO_QI
from npuc.frontend_tflite import load_tflite
from npuc.ops_report import render_markdown, rows
from npuc.passes.placement import npu_refusal

DOC = Path(__file__).resolve().parents[1] / "docs" / "supported-ops.md"


def test_committed_report_is_the_generated_one():
    assert DOC.read_text() == render_markdown(VIPNANO_QI), "regenerate with: npuc ops --markdown > docs/supported-ops.md"


@pytest.mark.parametrize("model", sorted(p.stem for p in oracle.MODELS.glob("*.tflite")))
def test_report_agrees_with_placement(model):
    report = {r["operator"]: r for r in rows(VIPNANO_QI)}
    graph = load_tflite(oracle.model_path(model))
    for op in graph.ops:
        reason = npu_refusal(graph, op, VIPNANO_QI)
        entry = report.get(op.opcode)
        if reason is None:
            assert entry is not None and entry["npu"], f"{op.name} goes to the NPU but the report says it cannot"
        elif entry is not None and entry["npu"]:
            # Refused by one of the constraints the report lists for this operator.
            assert entry["constraints"], f"{op.name}: refused ({reason}) though the report lists no constraint"
        else:
            assert entry is None or not entry["npu"], f"{op.name}: refused, though the report lists no constraint"
            assert reason.startswith("no NPU lowering"), reason


def test_every_builtin_operator_has_a_row():
    """The report covers TFLite's whole schema, so a user can look up any operator."""
    import tflite

    names = {r["operator"] for r in rows(VIPNANO_QI)}
    builtins = {k for k, v in vars(tflite.BuiltinOperator).items() if isinstance(v, int) and not k.startswith("_")}
    assert builtins - names == {"CUSTOM", "PLACEHOLDER_FOR_GREATER_OP_CODES", "DELEGATE"}
