"""Strip-by-strip statistics: a product is read in bands of rows, never as a whole tile.

A Sentinel-2 tile at 10 m is 10980 x 10980 pixels: ten float32 bands of it are 4.8 GB. The
engine therefore reads a product in strips of rows (1024 by default, full width) and takes the
statistics of each parcel as soon as the strip holding its last row has been read. The rows of
parcels that straddle a strip boundary are kept from one strip to the next, so every parcel's
statistics are computed on all its pixels at once, exactly as on the whole tile.

The plan (:class:`StripPlan`) depends only on the parcels' pixels and the strip height: it is
built once per grid and parcel set, next to the pixel cache. While the statistics of strip *n*
are computed, strip *n + 1* is decoded in a second thread (GDAL releases the GIL), so decoding
and statistics overlap on a multi-core machine.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from capmon.errors import InputError
from capmon.mdb.stats import ParcelPixels, ParcelStatistics

DEFAULT_STRIP_ROWS = 1024


@dataclass(frozen=True, eq=False)
class StripGroup:
    """The parcels whose last row lies in one strip.

    Their pixels are indexed in the rows ``first_row:end_row`` of the grid (``pixels.shape`` is
    that band of rows); ``first_row`` is the first row any of them touches.
    """

    first_row: int
    end_row: int
    pixels: ParcelPixels
    segment: npt.NDArray[np.int32]


@dataclass(frozen=True, eq=False)
class StripPlan:
    """Every parcel of a grid in exactly one :class:`StripGroup`, one group per strip."""

    shape: tuple[int, int]
    strip_rows: int
    groups: tuple[StripGroup, ...]
    keep_from: tuple[int, ...]
    """For each strip, the first row that later groups still need."""
    restore: npt.NDArray[np.int64]
    """Positions, in plan order, of the parcels in their original order."""

    @property
    def parcel_ids(self) -> npt.NDArray[np.int64]:
        """The parcels in plan order (groups one after the other)."""
        return np.concatenate([g.pixels.parcel_ids for g in self.groups])

    @property
    def pixel_count(self) -> int:
        return sum(len(g.pixels.pixel_index) for g in self.groups)

    def strips(self) -> Iterator[tuple[int, int]]:
        """The row bands ``(start, stop)`` to read, in order."""
        height = self.shape[0]
        for start in range(0, height, self.strip_rows):
            yield start, min(start + self.strip_rows, height)


def plan_strips(pixels: ParcelPixels, strip_rows: int = DEFAULT_STRIP_ROWS) -> StripPlan:
    """Group the parcels of ``pixels`` by the strip holding their last row."""
    if strip_rows < 1:
        raise InputError(f"strip_rows must be at least 1, not {strip_rows}")
    height, width = pixels.shape
    n_strips = max(-(-height // strip_rows), 1)
    counts = pixels.pixels
    rows = pixels.pixel_index // width
    first_row = np.zeros(len(counts), dtype=np.int64)
    last_row = np.zeros(len(counts), dtype=np.int64)
    has = counts > 0
    if has.any():
        starts = pixels.offsets[:-1][has]
        first_row[has] = np.minimum.reduceat(rows, starts)
        last_row[has] = np.maximum.reduceat(rows, starts)
    del rows
    finish = last_row // strip_rows
    order = np.argsort(finish, kind="stable")
    lengths = counts[order]
    offsets = np.zeros(len(order) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    source = np.repeat(pixels.offsets[:-1][order] - offsets[:-1], lengths)
    source += np.arange(int(offsets[-1]), dtype=np.int64)
    pixel_index = pixels.pixel_index[source]
    del source
    bounds = np.searchsorted(finish[order], np.arange(n_strips + 1), side="left")
    groups = []
    for strip in range(n_strips):
        a, b = int(bounds[strip]), int(bounds[strip + 1])
        end_row = min((strip + 1) * strip_rows, height)
        members = order[a:b]
        touched = first_row[members][counts[members] > 0]
        start_row = int(touched.min()) if len(touched) else strip * strip_rows
        start_row = min(start_row, strip * strip_rows)
        group_pixels = ParcelPixels(
            parcel_ids=pixels.parcel_ids[members],
            offsets=offsets[a : b + 1] - offsets[a],
            pixel_index=pixel_index[offsets[a] : offsets[b]] - start_row * width,
            shape=(end_row - start_row, width),
        )
        groups.append(StripGroup(start_row, end_row, group_pixels, group_pixels.segment))
    # later groups' first rows, as a running minimum from the end
    firsts = np.array([g.first_row for g in groups] + [height], dtype=np.int64)
    keep_from = np.minimum.accumulate(firsts[::-1])[::-1][1:]
    return StripPlan(
        shape=pixels.shape,
        strip_rows=strip_rows,
        groups=tuple(groups),
        keep_from=tuple(int(v) for v in keep_from),
        restore=np.argsort(order, kind="stable").astype(np.int64),
    )


@dataclass
class RowBuffer:
    """Rows ``start:stop`` of several same-shaped layers (bands and the validity mask)."""

    start: int
    stop: int
    layers: dict[str, npt.NDArray[np.generic]]

    def extended(self, strip: RowBuffer) -> RowBuffer:
        """These rows followed by the (adjacent) rows of ``strip``."""
        if strip.start != self.stop:
            raise InputError(f"strip at row {strip.start} does not follow row {self.stop}")
        if self.stop == self.start:
            return strip
        layers = {
            name: np.concatenate([self.layers[name], values])
            for name, values in strip.layers.items()
        }
        return RowBuffer(self.start, strip.stop, layers)

    def rows(self, start: int, stop: int) -> RowBuffer:
        """A view of rows ``start:stop`` (within this buffer)."""
        if not self.start <= start <= stop <= self.stop:
            raise InputError(f"rows {start}:{stop} are not in the buffer {self.start}:{self.stop}")
        a, b = start - self.start, stop - self.start
        return RowBuffer(start, stop, {name: v[a:b] for name, v in self.layers.items()})


ReadStrip = Callable[[int, int], RowBuffer]
Measure = Callable[[RowBuffer, StripGroup], None]


@dataclass(frozen=True)
class StripJob:
    """One product to stream: its plan, how to read a strip, how to measure a group, and the
    context in which its files stay open."""

    plan: StripPlan
    read: ReadStrip
    measure: Measure
    opened: Callable[[], AbstractContextManager[object]] = nullcontext


JobSource = Iterable[StripJob | BaseException | None]
"""Jobs in order; an exception stands for a product that could not be prepared, None for one
with nothing to stream."""


class _Measuring:
    """The rows kept between strips of one job, and the next strip expected."""

    def __init__(self, job: StripJob) -> None:
        self.job = job
        self.expected = list(job.plan.strips())
        self.index = 0
        self.buffer = RowBuffer(0, 0, {})

    def add(self, strip: RowBuffer) -> None:
        plan = self.job.plan
        start, stop = self.expected[self.index]
        if (strip.start, strip.stop) != (start, stop):
            raise InputError(f"asked for rows {start}:{stop}, got {strip.start}:{strip.stop}")
        buffer = self.buffer.extended(strip)
        group = plan.groups[self.index]
        if len(group.pixels.parcel_ids):
            self.job.measure(buffer.rows(group.first_row, group.end_row), group)
        keep = min(plan.keep_from[self.index], buffer.stop)
        buffer = buffer.rows(keep, buffer.stop)
        self.buffer = buffer if buffer.start < buffer.stop else RowBuffer(keep, keep, {})
        self.index += 1


def _read_all(job: StripJob) -> Iterator[RowBuffer]:
    with job.opened():
        for start, stop in job.plan.strips():
            yield job.read(start, stop)


def stream_jobs(jobs: JobSource, *, prefetch: bool = True) -> Iterator[BaseException | None]:
    """Stream each job's strips through its ``measure`` and yield, job by job and in order,
    None when all its groups are measured or the exception that stopped it (the others go on).

    With ``prefetch``, one thread takes the jobs from ``jobs`` and reads their strips, one strip
    ahead of the measuring thread and across products: the first strip of the next product is
    decoded while the last groups of the current one are measured. Files are opened, read and
    closed in that thread (GDAL environments are per thread). ``jobs`` is consumed in that
    thread too, so preparing a job (e.g. the parcels' pixels on a new grid) overlaps the
    measuring of the previous one.
    """
    if not prefetch:
        yield from _stream_inline(jobs)
        return
    items: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=1)
    stop_reading = threading.Event()

    def put(kind: str, value: object) -> bool:
        while not stop_reading.is_set():
            try:
                items.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    skipped = [-1]  # the index of a job whose measuring failed: its other strips are not read

    def produce() -> None:
        try:
            for index, job in enumerate(jobs):
                if not isinstance(job, StripJob):
                    if not put("result", job):
                        return
                    continue
                if not put("job", job):
                    return
                try:
                    for strip in _read_all(job):
                        if skipped[0] == index or not put("strip", strip):
                            break
                except Exception as exc:  # this product failed; the next ones go on
                    if not put("result", exc):
                        return
                    continue
                if not put("result", None):
                    return
        except BaseException as exc:  # the job source itself failed: the stream stops
            put("fatal", exc)
            return
        put("end", None)

    reader = threading.Thread(target=produce, name="capmon-strips", daemon=True)
    reader.start()
    try:
        measuring: _Measuring | None = None
        failure: BaseException | None = None
        current = -1
        while True:
            kind, value = items.get()
            if kind == "end":
                return
            if kind == "fatal":
                assert isinstance(value, BaseException)
                raise value
            if kind == "job":
                assert isinstance(value, StripJob)
                measuring, failure = _Measuring(value), None
            elif kind == "strip":
                assert isinstance(value, RowBuffer)
                assert measuring is not None
                if failure is None:
                    try:
                        measuring.add(value)
                    except Exception as exc:  # measured no further; its strips are dropped
                        failure = exc
                        skipped[0] = current + 1
            else:  # "result"
                current += 1
                outcome = failure if failure is not None else value
                assert outcome is None or isinstance(outcome, BaseException)
                measuring, failure = None, None
                yield outcome
    finally:
        stop_reading.set()
        while reader.is_alive():  # unblock a producer waiting on a full queue
            with suppress(queue.Empty):
                items.get(timeout=0.1)
        reader.join()


def _stream_inline(jobs: JobSource) -> Iterator[BaseException | None]:
    for job in jobs:
        if not isinstance(job, StripJob):
            yield job
            continue
        try:
            measuring = _Measuring(job)
            for strip in _read_all(job):
                measuring.add(strip)
        except Exception as exc:
            yield exc
            continue
        yield None


def stream_strips(
    plan: StripPlan,
    read: ReadStrip,
    measure: Measure,
    *,
    opened: Callable[[], AbstractContextManager[object]] = nullcontext,
    prefetch: bool = True,
) -> None:
    """One product: read the strips of ``plan`` with ``read(start, stop)`` and call
    ``measure(rows, group)`` for each group of parcels as soon as its rows are read (see
    :func:`stream_jobs`); an error is raised."""
    for outcome in stream_jobs([StripJob(plan, read, measure, opened)], prefetch=prefetch):
        if outcome is not None:
            raise outcome


def plan_statistics(plan: StripPlan, parts: list[ParcelStatistics]) -> ParcelStatistics:
    """The statistics measured group by group, back in the parcels' original order."""
    names = ParcelStatistics.__dataclass_fields__
    merged = {name: np.concatenate([getattr(p, name) for p in parts]) for name in names}
    if len(merged["parcel_ids"]) != len(plan.restore):
        raise InputError(
            f"statistics of {len(merged['parcel_ids'])} parcels for a plan of {len(plan.restore)}"
        )
    return ParcelStatistics(**{name: values[plan.restore] for name, values in merged.items()})
