"""Stream the rows of one CUR file as Arrow batches, whatever its format.

CSV (optionally gzipped) is read with every column as text (CUR's numbers are decimals like
`1.81E-8`: PostgreSQL's numeric parses them exactly, a float would not); Parquet as written.
Read errors (a truncated gzip, a corrupt Parquet footer) become `CurFormatError` naming the file
and where reading stopped.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from meterline.cur.normalise import CurFormatError
from meterline.landing import Zone

BATCH_ROWS = 32_768  # small enough that the next batch is rendered while PostgreSQL parses one
_CSV_BLOCK = 16 << 20


def _header(zone: Zone, rel: str) -> list[str]:
    with zone.open(rel) as raw:
        stream = gzip.GzipFile(fileobj=raw) if rel.endswith(".gz") else raw
        first = b""
        while b"\n" not in first:
            chunk = stream.read(65536)
            if not chunk:
                break
            first += chunk
    line = first.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    if not line:
        raise CurFormatError(f"{zone.uri(rel)}: line 1: no header")
    return next(csv.reader(io.StringIO(line)))


def csv_batches(zone: Zone, rel: str) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first file line of the batch, batch); the header is line 1."""
    uri = zone.uri(rel)
    try:
        header = _header(zone, rel)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CurFormatError(f"{uri}: line 1: cannot read the header ({exc})") from exc
    if len(set(header)) != len(header):
        raise CurFormatError(f"{uri}: line 1: duplicate column names")
    line = 2
    raw = zone.open(rel)
    try:
        stream = pa.CompressedInputStream(raw, "gzip") if rel.endswith(".gz") else raw
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK, encoding="utf8"),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=True
            ),
        )
        for batch in reader:
            yield line, batch
            line += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowException, OSError, EOFError) as exc:
        raise CurFormatError(f"{uri}: after line {line - 1}: {exc}") from exc
    finally:
        raw.close()


def parquet_batches(
    zone: Zone, rel: str, as_dictionary: Callable[[str], bool] | None = None
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(first row number of the batch, counting from 1, batch). Text columns `as_dictionary`
    accepts are read dictionary-encoded, as Parquet stores them (no string per row)."""
    uri = zone.uri(rel)
    row = 1
    raw = zone.open(rel)
    try:
        parquet = pq.ParquetFile(raw)
        if as_dictionary is not None:
            names = [
                f.name
                for f in parquet.schema_arrow
                if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and as_dictionary(f.name)
            ]
            # The footer already read (on S3, a request): only the reading options change.
            parquet = pq.ParquetFile(raw, metadata=parquet.metadata, read_dictionary=names)
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            yield row, batch
            row += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowException, OSError, EOFError) as exc:
        raise CurFormatError(f"{uri}: row {row}: not a readable Parquet file ({exc})") from exc
    finally:
        raw.close()


def column_names(zone: Zone, rel: str) -> list[str]:
    """The file's column names as written (CSV header, Parquet schema), read before any row."""
    uri = zone.uri(rel)
    if rel.endswith(".parquet"):
        try:
            with zone.open(rel) as raw:
                return pq.ParquetFile(raw).schema_arrow.names
        except (pa.ArrowInvalid, pa.ArrowException, OSError, EOFError) as exc:
            raise CurFormatError(f"{uri}: row 1: not a readable Parquet file ({exc})") from exc
    try:
        return _header(zone, rel)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CurFormatError(f"{uri}: line 1: cannot read the header ({exc})") from exc


def batches(
    zone: Zone, rel: str, as_dictionary: Callable[[str], bool] | None = None
) -> Iterator[tuple[int, pa.RecordBatch]]:
    if rel.endswith(".parquet"):
        return parquet_batches(zone, rel, as_dictionary)
    if rel.endswith((".csv", ".csv.gz")):
        return csv_batches(zone, rel)
    raise CurFormatError(f"{zone.uri(rel)}: not a CUR data file (.csv, .csv.gz or .parquet)")
