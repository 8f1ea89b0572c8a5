"""The syntax of request parameters, written once as regular expressions: the OpenAPI
document states them as ``pattern`` and the request validation enforces the same text, so
what the document calls valid the service reads, and what it calls invalid gets 400.

The expressions are anchored and use only the common subset of ECMA-262 (OpenAPI), Python
``re`` and Rust ``regex`` (pydantic's validator): ``[0-9]`` rather than ``\\d`` (which also
matches other scripts' digits), no look-around, no inline flags.
"""

from __future__ import annotations

_DATE = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_INSTANT = rf"(?:{_DATE}[Tt]{_TIME}{_OFFSET}|{_DATE})"

STAC_DATETIME = rf"^(?:|{_INSTANT}|{_INSTANT}/(?:{_INSTANT}|\.\.)?|(?:\.\.)?/{_INSTANT})$"
"""STAC's ``datetime``: an RFC 3339 date-time (with its offset) or a date (the whole day), or
an interval ``start/end`` whose open end is ``..`` or empty (not both ends); empty: no
filter."""

_NUMBER = r"-?[0-9]+(?:\.[0-9]+)?"
_LONGITUDE = r"-?(?:180(?:\.0+)?|(?:1[0-7][0-9]|[1-9]?[0-9])(?:\.[0-9]+)?)"
_LATITUDE = r"-?(?:90(?:\.0+)?|[1-8]?[0-9](?:\.[0-9]+)?)"
_BBOX_2D = rf"{_LONGITUDE},{_LATITUDE},{_LONGITUDE},{_LATITUDE}"
_BBOX_3D = rf"{_LONGITUDE},{_LATITUDE},{_NUMBER},{_LONGITUDE},{_LATITUDE},{_NUMBER}"

STAC_BBOX = rf"^(?:|{_BBOX_2D}|{_BBOX_3D})$"
"""STAC's ``bbox`` in a query: ``west,south,east,north`` (or the 3D form with heights),
decimal degrees within -180..180 and -90..90; empty: no filter."""

PARCEL_BBOX = rf"^{_BBOX_2D}$"
"""The parcels' GeoJSON box: ``minx,miny,maxx,maxy`` in decimal degrees."""

PAGING_TOKEN = r"^[A-Za-z0-9_-]*$"
"""A STAC paging token (unpadded URL-safe base64, as the ``next`` links give it)."""

SIGNAL_NAME = r"^(?:[A-Za-z][A-Za-z0-9_]*|SPYNDEX:[A-Za-z][A-Za-z0-9_]*)$"
"""A signal: a built-in name (NDVI, AMP_VV...), a spyndex index, or ``SPYNDEX:<index>``."""

SIGNAL_LIST = r"^(?:[A-Za-z][A-Za-z0-9_]*(?:,[A-Za-z][A-Za-z0-9_]*)*)?$"
"""A comma-separated list of signal names (empty: every signal)."""

LAYER_ID = r"^(?:[a-z][a-z0-9_]*)?$"
"""A map layer id (``crop``, ``l4b_compliance``...; empty: none)."""
