"""Extract the text of a certificate PDF, looking into the files embedded in it.

A provider may attach the certificate itself, or a PDF that embeds it (``Mail_<id>.pdf``)
next to the original message's attachments. The caller's label counter scores every readable
document found within ``MAX_EMBEDDING_DEPTH`` levels. The one with the most certificate
labels is the certificate, and a tie goes to the outermost document. pypdf errors become a
reason in the result, never an exception, except that a PDF past a ceiling of
``[limits]`` (size, pages, decompressed stream size) raises monitor.limits.LimitExceeded and
MemoryError propagates, so the caller can name the limit.
"""

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pypdf import PasswordType, PdfReader, apply_configuration
from pypdf.errors import LimitReachedError

from config.provider_settings import ReadingLimits
from monitor.limits import Limit, LimitExceeded, exceeded
from monitor.mime import PDF_MAGIC, PDF_MAGIC_WINDOW

MAX_EMBEDDING_DEPTH = 2
MAX_DOCUMENTS = 16
# Certificates print their labels on the first pages; the cap bounds the time that a
# PDF with thousands of pages can take.
MAX_PAGES = 30


@dataclass(frozen=True)
class PdfDocumentText:
    """The text of one document: the attached PDF or one embedded in it."""

    text: str
    embedded_name: str | None
    label_count: int
    data: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class CertificatePdfReading:
    """The outcome of reading one attached PDF: the certificate's text, or why it is unreadable.

    ``certificate`` is None when no document had enough labels. ``error`` is set when the
    attached PDF itself could not be read, or when no certificate was found and an
    embedded PDF could not be read.
    """

    certificate: PdfDocumentText | None
    documents: tuple[PdfDocumentText, ...]
    error: str | None


class _UnreadablePdfError(Exception):
    """One document could not be opened or its text extracted."""


def read_certificate_pdf(
    data: bytes,
    count_labels: Callable[[str], int],
    min_labels: int,
    limits: ReadingLimits | None = None,
) -> CertificatePdfReading:
    """Read ``data`` and the PDFs embedded in it; choose the one with the most labels.

    ``count_labels`` returns how many distinct certificate fields a text labels. A document
    counts as the certificate only with at least ``min_labels`` of them. Raises
    LimitExceeded when a document is past one of ``limits``.
    """
    limits = limits or ReadingLimits()
    walk = _DocumentWalk(count_labels, limits)
    try:
        with _pypdf_limits(limits):
            walk.visit(data, embedded_name=None, depth=0)
    except _UnreadablePdfError as exc:
        return CertificatePdfReading(certificate=None, documents=(), error=str(exc))

    documents = tuple(walk.documents)
    best = _best_document(documents, min_labels)
    error = None
    if best is None and walk.errors:
        error = "; ".join(walk.errors)
    elif best is None and not any(document.text.strip() for document in documents):
        error = "no text could be extracted from the PDF (an image-only PDF?)"
    return CertificatePdfReading(certificate=best, documents=documents, error=error)


def _best_document(
    documents: tuple[PdfDocumentText, ...], min_labels: int
) -> PdfDocumentText | None:
    best: PdfDocumentText | None = None
    for document in documents:
        if document.label_count < min_labels:
            continue
        if best is None or document.label_count > best.label_count:
            best = document
    return best


class _DocumentWalk:
    """Collects the text of a PDF and, recursively, of the PDFs embedded in it."""

    def __init__(self, count_labels: Callable[[str], int], limits: ReadingLimits) -> None:
        self.count_labels = count_labels
        self.limits = limits
        self.documents: list[PdfDocumentText] = []
        self.errors: list[str] = []

    def visit(self, data: bytes, embedded_name: str | None, depth: int) -> None:
        if len(data) > self.limits.max_pdf_bytes:
            raise exceeded(Limit.PDF_BYTES, len(data), self.limits.max_pdf_bytes, "PDF bytes:")
        reader = _open(data)
        _check_pages(reader, self.limits)
        text = _extract_text(reader)
        self.documents.append(
            PdfDocumentText(text, embedded_name, self.count_labels(text), data=data)
        )
        if depth >= MAX_EMBEDDING_DEPTH:
            return

        try:
            embedded = _embedded_files(reader)
        except _UnreadablePdfError as exc:
            self.errors.append(f"embedded files: {exc}")
            return
        for name, contents in embedded:
            if len(self.documents) >= MAX_DOCUMENTS:
                return
            self._visit_embedded(contents, name, depth + 1)

    def _visit_embedded(self, data: bytes, name: str, depth: int) -> None:
        if PDF_MAGIC not in data[:PDF_MAGIC_WINDOW]:
            return
        try:
            self.visit(data, embedded_name=name, depth=depth)
        except _UnreadablePdfError as exc:
            self.errors.append(f"embedded file {name!r}: {exc}")


@contextmanager
def _pypdf_limits(limits: ReadingLimits) -> Iterator[None]:
    """Apply ``max_decompressed_bytes`` to every decompression filter of pypdf."""
    ceiling = limits.max_decompressed_bytes
    with apply_configuration(
        zlib_maximum_output_length=ceiling,
        lzw_maximum_output_length=ceiling,
        run_length_maximum_output_length=ceiling,
        brotli_maximum_output_length=ceiling,
        jbig2_maximum_output_length=ceiling,
        array_based_stream_maximum_output_length=ceiling,
        maximum_declared_stream_length=ceiling,
    ):
        yield


@contextmanager
def _pypdf_errors() -> Iterator[None]:
    """Turn pypdf's errors into _UnreadablePdfError, except limits and memory exhaustion.

    pypdf raises many exception types on malformed input (PdfReadError, PdfStreamError,
    ValueError, KeyError, TypeError, IndexError, zlib.error, RecursionError, ...), so this
    catches Exception and reports the type and message as the reason.
    """
    try:
        yield
    except (_UnreadablePdfError, LimitExceeded, MemoryError):
        raise
    except LimitReachedError as exc:
        if "decompress" in str(exc).lower():
            raise LimitExceeded(Limit.DECOMPRESSED_BYTES, str(exc)) from exc
        raise _UnreadablePdfError(_describe(exc)) from exc
    except Exception as exc:
        raise _UnreadablePdfError(_describe(exc)) from exc


def _open(data: bytes) -> PdfReader:
    with _pypdf_errors():
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            detail = "the PDF is encrypted with a password"
            raise _UnreadablePdfError(detail)
        _ = len(reader.pages)
    return reader


def _check_pages(reader: PdfReader, limits: ReadingLimits) -> None:
    pages = len(reader.pages)
    if pages > limits.max_pdf_pages:
        raise exceeded(Limit.PDF_PAGES, pages, limits.max_pdf_pages, "PDF pages:")


def _extract_text(reader: PdfReader) -> str:
    pages = []
    with _pypdf_errors():
        for index, page in enumerate(reader.pages):
            if index >= MAX_PAGES:
                break
            # Text extraction logs a decompression limit and goes on with an empty page, so
            # the content streams are decoded here first, where the limit raises.
            contents = page.get_contents()
            if contents is not None:
                contents.get_data()
            pages.append(page.extract_text())
    return "\n".join(pages)


def _embedded_files(reader: PdfReader) -> list[tuple[str, bytes]]:
    with _pypdf_errors():
        attachments = reader.attachments
        return [(name, content) for name, contents in attachments.items() for content in contents]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
