"""Reading data files: a stored dataset file's rows as pandas DataFrames, in bounded memory.

No Django here (tests/datafiles/test_no_django.py checks it): governance profiles uploads and the
pipeline cleans them through the same reader.

- `detect_format(filename, head)`: the base format of an upload, from its name checked against
  its first bytes (sniffing.py).
- `iter_frames(path, fmt=...)`: the one entry point for rows. It unwraps gzip and zip
  (archives.py), decodes text in blocks, replacing and counting undecodable bytes (decoding.py),
  and reads CSV/TSV (delimited.py), JSON Lines and JSON arrays (jsonrecords.py), Parquet
  (parquet.py) and the Chorus formats (chorus.py). Malformed rows are skipped and reported in a
  `ReadReport`.
- `ReadLimits` bound every read (limits.py); a file that cannot be read raises
  `DatasetReadError` with a short code and a sentence for the uploader.
- `bundle_product_zips`: a folder of Chorus product zips as one upload.

Memory stays bounded whatever the file size: files are read in chunks of `chunk_rows` rows (or
of CHUNK_CHARS characters), text is decoded in blocks of about 1 MiB; a line (or a JSON record)
is held whole, and a compressed Parquet file is first unpacked to a temporary file.
"""

from datafiles.chorus import CHORUS_JUDGMENT_COLUMNS, CHORUS_PRODUCT_COLUMNS, bundle_product_zips
from datafiles.errors import DatasetReadError
from datafiles.formats import FORMATS
from datafiles.limits import ReadLimits
from datafiles.reader import iter_frames, read_chorus_products
from datafiles.report import ReadReport
from datafiles.sniffing import detect_format

__all__ = [
    "CHORUS_JUDGMENT_COLUMNS",
    "CHORUS_PRODUCT_COLUMNS",
    "FORMATS",
    "DatasetReadError",
    "ReadLimits",
    "ReadReport",
    "bundle_product_zips",
    "detect_format",
    "iter_frames",
    "read_chorus_products",
]
