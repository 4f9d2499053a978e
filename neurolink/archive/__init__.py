"""Reading, verifying and converting neurolink archives (written by :class:`neurolink.sinks.archive.ArchiveSink`)."""

from neurolink.archive.reader import Archive, open_archive, read_archive, verify_archive

__all__ = ["Archive", "open_archive", "read_archive", "verify_archive"]
