"""After every case: the inputs are as they were (no output, temporary or partial file beside them), and the
tampered checkpoint's payload never ran."""

from __future__ import annotations

from tests.bad_inputs.corpus import snapshot


def test_no_case_wrote_beside_its_inputs(outcomes, world, world_before):  # after the cases that ran
    assert snapshot(world) == world_before
    assert not (world / "pwned").exists()
