"""Restructuring keeps the bytes: the MobileNet family's blobs equal those npuc compiled before it.

tests/data/blob_digests.json holds the sha256 of each blob as npuc compiled it
at the commit it names, before the compiler was split into lowering,
scheduling and encoding stages.  A change that alters these bytes on purpose
says which and why in its commit, and records the new digests here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import oracle
from npuc.driver import compile_model

RECORD = json.loads((Path(__file__).parent / "data" / "blob_digests.json").read_text())
CASES = sorted(RECORD["blobs"].items())


@pytest.mark.parametrize("case, digest", CASES, ids=[k for k, _ in CASES])
def test_blob_bytes_are_unchanged(case: str, digest: str):
    model, target, unit = case.split()
    result = compile_model(oracle.model_path(Path(model).stem), target, npu=unit == "npu")
    assert hashlib.sha256(result.blob).hexdigest() == digest, f"{case}: the blob's bytes changed since {RECORD['recorded']}"


def test_the_record_covers_every_mobilenet_on_both_targets():
    names = {c.split()[0] for c, _ in CASES}
    assert {"mobilenet_quant_v1_224.tflite", "mobilenet_v2_1.0_224_quant.tflite",
            "tf2_mobilenet_v2_1.0_224_ptq.tflite", "ssd_mobilenet_v1_coco_quant_postprocess.tflite"} <= names
    for name in names:
        assert {c.split()[1] for c, _ in CASES if c.startswith(name + " ") and c.endswith(" npu")} == \
            {"vipnano-qi", "vipnano-si-plus"}
