// Package dicomio reads DICOM studies safely and writes kspaced's
// reconstructions and uncertainty maps back as DICOM series.
//
// Reading: ReadStudies walks files and folders, groups images into studies,
// series and instances (slice order) and decodes native pixel data (8, 16
// or 32 bits, signed or unsigned, rescaled, multi-frame with functional
// groups). Every file is checked by an element walker of this package
// before suyashkumar/dicom parses it: the file size is capped, every
// declared length is checked against the bytes left (explicit and implicit
// VR, both byte orders, deflate, sequences and encapsulated values of
// defined and undefined length), nesting is bounded, and Pixel Data must
// hold exactly rows × cols × frames × samples × bytes. A bad file becomes a
// FileError and never fails the rest; compressed transfer syntaxes give
// ErrUnsupportedTransferSyntax.
//
// Writing: WriteSeries (or WriteScan for a scan's mean and std together)
// writes one MR Image Storage series per output, derived from the source
// series when one is known, into dir/<SeriesInstanceUID>/ atomically.
// WritePreviews draws zero-filled | reconstruction | uncertainty PNGs.
package dicomio
