"""Sen4CAP's mowing compliance code ``compl`` (sen4cap-system.md 6.6, ``compliancy.py``).

* -1: the declared crop (``Ori_crop``) has no rule in ``[compliancy]``;
* 0: no mowing found and the parcel was not processed (no observation): not assessed;
* 1: compliant: a mowing interval intersects the crop's window;
* 2: not compliant: no mowing at all (processed), or none in the window;
* 3: ("Lithuania" rule, ``crop_rule = 1``) mowing both inside and outside the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from capmon.processors.l4b.config import ComplianceRule, L4BConfig
from capmon.processors.l4b.fusion import MowingEvent

NOT_LISTED, NOT_ASSESSED, COMPLIANT, NOT_COMPLIANT, OUTSIDE_TOO = -1, 0, 1, 2, 3


def _in_window(event: MowingEvent, rule: ComplianceRule) -> bool:
    first = datetime.combine(rule.start, time())
    last = datetime.combine(rule.end, time()) + timedelta(days=1) - timedelta(seconds=1)
    return max(event.start, first) <= min(event.end, last)


def compliance_code(
    ori_crop: object, events: Sequence[MowingEvent], processed: bool, config: L4BConfig
) -> int:
    """The ``compl`` value of one parcel."""
    rule = config.rule_for(ori_crop)
    if rule is None:
        return NOT_LISTED
    if not events:
        return NOT_COMPLIANT if processed else NOT_ASSESSED
    inside = [_in_window(e, rule) for e in events]
    if not any(inside):
        return NOT_COMPLIANT
    if rule.rule == 1 and not all(inside):
        return OUTSIDE_TOO
    return COMPLIANT
