"""Training text: Jane Austen's six novels from Debian's r-cran-janeaustenr.

The package (MIT licence; the novels themselves are public domain) stores the
texts as R character vectors in a lazy-load database (data/Rdata.rdx/.rdb).
This module reads that database directly, so R does not need to be
installed: `apt-get download r-cran-janeaustenr` and point --deb at the file,
or install the package and point --rdata at its data/ directory.

The text is cleaned as little as possible: the hard-wrapped lines of each
paragraph are joined with spaces, paragraphs are separated by a blank line,
runs of spaces (two after a full stop, in the transcription) become one, and
the `_` italics markers of the Project Gutenberg transcription are
dropped. The held-out split is the last `heldout_fraction` of every novel's
paragraphs, so every novel is represented in both parts.
"""

import gzip
import os
import re
import struct
import subprocess
import tempfile
import zlib

NOVELS = [
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
]

_SPACES = re.compile(" {2,}")

RDATA_SUBDIR = "usr/lib/R/site-library/janeaustenr/data"


class RDataError(Exception):
    pass


class _Reader:
    """Minimal reader of R's XDR serialization (format 2 and 3)."""

    def __init__(self, data):
        self.d = data
        self.p = 0

    def u32(self):
        (v,) = struct.unpack_from(">I", self.d, self.p)
        self.p += 4
        return v

    def i32(self):
        (v,) = struct.unpack_from(">i", self.d, self.p)
        self.p += 4
        return v

    def header(self):
        if self.d[:2] != b"X\n":
            raise RDataError("not an XDR-serialized R object")
        self.p = 2
        version = self.u32()
        self.u32()  # writer R version
        self.u32()  # minimal reader version
        if version == 3:
            n = self.u32()
            self.p += n  # native encoding name
        elif version != 2:
            raise RDataError(f"unsupported R serialization version {version}")

    def charsxp(self):
        self.u32()  # flags (type 9 with encoding bits)
        n = self.i32()
        if n == -1:
            return None  # NA_character_
        s = self.d[self.p:self.p + n]
        self.p += n
        return s.decode("utf-8")

    def strsxp(self):
        flags = self.u32()
        if flags & 0xFF != 16:
            raise RDataError(f"expected a character vector, got R type {flags & 0xFF}")
        if flags & (1 << 9):
            raise RDataError("character vector with attributes is not expected here")
        n = self.i32()
        return [self.charsxp() for _ in range(n)]


def _index(rdx_bytes):
    """Variable name -> (offset, length) in the .rdb, from the .rdx index.

    The index is a serialized list(variables=, references=, compressed=);
    rather than a general unserializer, this reads the `variables` element:
    a list of integer pairs followed by its names attribute.
    """
    r = _Reader(rdx_bytes)
    r.header()
    r.u32()  # VECSXP flags (list with attributes)
    if r.i32() != 3:
        raise RDataError("unexpected lazy-load index layout")
    flags = r.u32()
    if flags & 0xFF != 19:
        raise RDataError("unexpected lazy-load index layout (variables)")
    count = r.i32()
    pairs = []
    for _ in range(count):
        if r.u32() & 0xFF != 13 or r.i32() != 2:
            raise RDataError("unexpected lazy-load index entry")
        pairs.append((r.i32(), r.i32()))
    # Attribute pairlist: names = character vector.
    r.u32()  # LISTSXP flags
    r.u32()  # SYMSXP tag
    r.charsxp()  # "names"
    names = r.strsxp()
    return dict(zip(names, pairs))


def read_novels(rdata_dir):
    """Returns {novel: [lines]} from an installed or extracted data/ directory."""
    with open(os.path.join(rdata_dir, "Rdata.rdx"), "rb") as f:
        index = _index(gzip.decompress(f.read()))
    with open(os.path.join(rdata_dir, "Rdata.rdb"), "rb") as f:
        rdb = f.read()
    out = {}
    for name in NOVELS:
        if name not in index:
            raise RDataError(f"novel {name} missing from {rdata_dir}")
        off, length = index[name]
        blob = rdb[off:off + length]
        (n,) = struct.unpack(">I", blob[:4])
        raw = zlib.decompress(blob[4:])
        if len(raw) != n:
            raise RDataError(f"{name}: corrupt compressed entry")
        r = _Reader(raw)
        r.header()
        out[name] = [line or "" for line in r.strsxp()]
    return out


def rdata_dir_from_deb(deb_path, workdir):
    subprocess.run(["dpkg-deb", "-x", deb_path, workdir], check=True)
    return os.path.join(workdir, RDATA_SUBDIR)


def paragraphs(lines):
    """Joins hard-wrapped lines; a blank line ends a paragraph."""
    paras, cur = [], []
    for line in lines:
        line = line.strip()
        if line:
            cur.append(line.replace("_", ""))
        elif cur:
            paras.append(_SPACES.sub(" ", " ".join(cur)))
            cur = []
    if cur:
        paras.append(_SPACES.sub(" ", " ".join(cur)))
    return paras


def build_splits(novels, heldout_fraction):
    """(train_text, heldout_text): the last fraction of each novel is held out."""
    train, held = [], []
    for name in NOVELS:
        paras = paragraphs(novels[name])
        cut = len(paras) - max(1, int(round(len(paras) * heldout_fraction)))
        train.append("\n\n".join(paras[:cut]))
        held.append("\n\n".join(paras[cut:]))
    return "\n\n".join(train) + "\n", "\n\n".join(held) + "\n"


def load_texts(deb=None, rdata=None, heldout_fraction=0.02):
    if rdata is None:
        if deb is None:
            raise RDataError("give --deb (r-cran-janeaustenr_*.deb) or --rdata (its data/ dir)")
        with tempfile.TemporaryDirectory() as tmp:
            return build_splits(read_novels(rdata_dir_from_deb(deb, tmp)), heldout_fraction)
    return build_splits(read_novels(rdata), heldout_fraction)
