"""Streaming multipart uploads into a per-request folder, refused as soon as a file passes the size limit.

Starlette's own form parser spools uploads to the system temp folder and reads the whole body first;
here the body is parsed chunk by chunk (python-multipart's ``MultipartParser``) and each file part is
written straight into the request's own temporary folder, so nothing lands anywhere else and an
oversized upload is refused after at most ``limit + one chunk`` bytes, never held whole in memory.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header

#: Most form fields a request may carry, and the most bytes of all non-file fields together.
MAX_FIELDS = 64
MAX_FIELD_BYTES = 64 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class UploadRefused(Exception):
    """The upload cannot be accepted; ``status`` is the HTTP status, the message one line."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class UploadedFile:
    field: str
    filename: str  # the client's name, reduced to a safe base name
    path: Path
    size: int = 0


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    bytes_read: int = 0


def safe_filename(name: str | None, index: int) -> str:
    """A base name safe to create in the request folder: ``../../x y.xml`` -> ``x_y.xml``."""
    base = Path(str(name or "").replace("\\", "/")).name
    base = _SAFE_NAME.sub("_", base).strip("._")[:100]
    return base or f"upload-{index}"


class RequestFolder:
    """A temporary folder for one request, removed on exit whatever happened."""

    def __init__(self, root: Path | None = None):
        self.root = root
        self.path: Path | None = None

    def __enter__(self) -> Path:
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix="elvmass-req-", dir=self.root))
        return self.path

    def __exit__(self, *exc) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


async def stream_form(request, folder: Path, *, max_file_bytes: int, max_files: int) -> ParsedForm:
    """Parse a multipart/form-data body into ``folder``; raises :class:`UploadRefused`."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadRefused(415, "send the ECG as multipart/form-data with a 'file' field")
    length = request.headers.get("content-length")
    budget = max_files * max_file_bytes + MAX_FIELD_BYTES + 64 * 1024
    if length is not None and length.isdigit() and int(length) > budget:
        raise UploadRefused(413, f"upload of {int(length)} bytes is over the limit of {max_file_bytes} bytes per file")

    form = ParsedForm()
    state: dict = {"headers": {}, "hname": b"", "hvalue": b"", "part": None, "fh": None, "buf": None,
                   "field_bytes": 0, "error": None}

    def on_part_begin():
        state["headers"] = {}
        state["part"] = None

    def on_header_field(data, start, end):
        state["hname"] += data[start:end]

    def on_header_value(data, start, end):
        state["hvalue"] += data[start:end]

    def on_header_end():
        state["headers"][state["hname"].lower()] = state["hvalue"]
        state["hname"], state["hvalue"] = b"", b""

    def on_headers_finished():
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if len(form.fields) + len(form.files) >= MAX_FIELDS:
            raise UploadRefused(413, f"more than {MAX_FIELDS} form fields")
        if b"filename" in disp:
            if len(form.files) >= max_files:
                raise UploadRefused(413, f"more than {max_files} files in one request")
            fname = safe_filename(disp[b"filename"].decode("utf-8", "replace"), len(form.files))
            path = folder / fname
            n = 1
            while path.exists():  # two uploads of the same name keep both
                n += 1
                path = folder / f"{Path(fname).stem}-{n}{Path(fname).suffix}"
            up = UploadedFile(name, fname, path)
            form.files.append(up)
            state["part"] = up
            state["fh"] = open(path, "wb")  # noqa: SIM115 - closed in on_part_end / finally
        else:
            state["part"] = name
            state["buf"] = bytearray()

    def on_part_data(data, start, end):
        part = state["part"]
        n = end - start
        if isinstance(part, UploadedFile):
            part.size += n
            if part.size > max_file_bytes:
                raise UploadRefused(413, f"{part.filename}: file over the limit of {max_file_bytes} bytes")
            state["fh"].write(data[start:end])
        else:
            state["field_bytes"] += n
            if state["field_bytes"] > MAX_FIELD_BYTES:
                raise UploadRefused(413, "form fields over 64 KiB")
            state["buf"] += data[start:end]

    def on_part_end():
        part = state["part"]
        if isinstance(part, UploadedFile):
            state["fh"].close()
            state["fh"] = None
        elif part is not None:
            form.fields[part] = bytes(state["buf"]).decode("utf-8", "replace")
        state["part"] = None

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        async for chunk in request.stream():
            form.bytes_read += len(chunk)
            if form.bytes_read > budget:
                raise UploadRefused(413, f"upload over the limit of {max_file_bytes} bytes per file")
            parser.write(chunk)
        parser.finalize()
    except UploadRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - python-multipart's errors: a malformed body
        raise UploadRefused(400, f"malformed multipart body ({type(exc).__name__})") from None
    finally:
        request.state.upload_bytes_read = form.bytes_read
        if state["fh"] is not None:
            state["fh"].close()
    return form
