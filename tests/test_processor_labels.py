"""Every parameter of every builtin processor has a human title (the run form's labels and
``capmon run --help`` come from capmon.processors.labels), and the OGC description carries it."""

from __future__ import annotations

import pytest

from capmon.processors.labels import PROCESSOR_LABELS, parameter_label
from capmon.processors.registry import BUILTIN_PROCESSORS, get_processor


@pytest.mark.parametrize("processor_id", sorted(BUILTIN_PROCESSORS))
def test_every_parameter_has_a_title(processor_id: str) -> None:
    processor = get_processor(processor_id)
    names = set(processor.parameters.model_fields)
    missing = sorted(n for n in names if parameter_label(processor_id, n) is None)
    assert not missing, f"{processor_id}: parameters without a title: {missing}"
    stale = sorted(set(PROCESSOR_LABELS.get(processor_id, {})) - names)
    assert not stale, f"{processor_id}: titles of parameters it does not have: {stale}"
    for name in names:
        label = parameter_label(processor_id, name)
        assert label is not None
        # A title is words, not the parameter's name re-cased ("Ndvi Max", "Pa Train H").
        if "_" in name:
            assert label.title.lower() != name.replace("_", " "), name
